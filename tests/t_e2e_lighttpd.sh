#!/bin/sh
# End to end through lighttpd, with the site configs of lighttpd/: slhook.cgi
# under mod_cgi, slhook.fcgi started by mod_fastcgi (bin-path), and
# slhook.fcgi started by spawn-fcgi on a Unix socket. The same contract
# suite for each, over HTTPS.
. "$(dirname "$0")/e2e_lib.sh"
e2e_init lighttpd spawn-fcgi

# lighttpd_conf: a main config like Debian's, including $D/site.conf.
lighttpd_conf() {
    {
        echo 'server.modules = ( "mod_access" )'
        echo 'server.bind = "127.0.0.1"'
        echo "server.port = $(free_port)"
        echo "server.document-root = \"$D/www\""
        echo "server.pid-file = \"$D/run/lighttpd.pid\""
        echo "server.errorlog = \"$D/log/lighttpd.log\""
        echo "# A CGI's stderr (slhook's log lines)."
        echo "server.breakagelog = \"$D/log/handler.log\""
        if [ "$(id -u)" -eq 0 ]; then
            echo "server.username = \"$RUN_USER\""
            echo "server.groupname = \"$(id -gn "$RUN_USER")\""
        fi
        echo "include \"$D/site.conf\""
    } >"$D/lighttpd.conf"
}

start_lighttpd() {
    lighttpd_conf
    if ! lighttpd -tt -f "$D/lighttpd.conf" >"$D/log/start.log" 2>&1; then
        nok "lighttpd accepts the config"
        cat "$D/log/start.log"
        return 1
    fi
    # -tt opened the error log as root: hand it to the user who writes it.
    chown -R "$RUN_USER" "$D/log"
    lighttpd -f "$D/lighttpd.conf" >>"$D/log/start.log" 2>&1
    mode_stop_cmd "stop_pidfile '$D/run/lighttpd.pid'"
    if ! wait_file "$D/run/lighttpd.pid" || ! wait_tcp "$PORT"; then
        nok "lighttpd started"
        show_logs
        return 1
    fi
}

restart_lighttpd() {
    stop_pidfile "$D/run/lighttpd.pid"
    start_lighttpd
}

# The site configs' commented login example.
LOGIN_SED='/^#server.modules.*"mod_auth"/ s/^#//
/^#.*\(\?!health/,/^#}$/ s/^#//'

mode_begin lighttpd-cgi
ship_conf lighttpd/50-slhook-cgi.conf
if start_lighttpd; then
    contract_suite
    web_suite
    server_login_suite "$LOGIN_SED" restart_lighttpd
fi
mode_end

mode_begin lighttpd-bin-path
ship_conf lighttpd/50-slhook-fastcgi.conf
if start_lighttpd; then
    contract_suite
    web_suite
    server_login_suite "$LOGIN_SED" restart_lighttpd
fi
mode_end

mode_begin lighttpd-spawn-fcgi
# As lighttpd/50-slhook-spawn-fcgi.conf says to start it.
spawn_fcgi_start
ship_conf lighttpd/50-slhook-spawn-fcgi.conf
if start_lighttpd; then
    contract_suite
    web_suite
    server_login_suite "$LOGIN_SED" restart_lighttpd
fi
mode_end

# Each config's optional allow-list: SocketLabs' addresses only.
for conf in cgi fastcgi spawn-fcgi; do
    mode_begin "lighttpd-$conf-allow-list"
    ship_conf "lighttpd/50-slhook-$conf.conf"
    # Only the allow-list's lines: the login example below it stays off.
    allowlist_suite '/only SocketLabs/,/^ *#}$/ s/^( *)#( *[$}])/\1\2/'
    start_lighttpd && allowlist_expect
    mode_end
done

finish
