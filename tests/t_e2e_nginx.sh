#!/bin/sh
# End to end through nginx, with nginx/slhook.conf: fastcgi_pass to
# slhook.fcgi started by spawn-fcgi on a Unix socket, and to slhook.fcgi
# --listen HOST:PORT. The same contract suite for each, over HTTPS.
. "$(dirname "$0")/e2e_lib.sh"
e2e_init nginx spawn-fcgi

# nginx_conf: a main config like Debian's, including $D/site.conf.
nginx_conf() {
    mkdir -p "$D/nginx-tmp"
    chown "$RUN_USER" "$D/nginx-tmp"
    {
        if [ "$(id -u)" -eq 0 ]; then
            echo "user $RUN_USER $(id -gn "$RUN_USER");"
        fi
        echo "worker_processes 1;"
        echo "pid $D/run/nginx.pid;"
        echo "error_log $D/log/nginx.log info;"
        echo "events { worker_connections 128; }"
        echo "http {"
        echo "    access_log $D/log/access.log;"
        for t in client_body fastcgi proxy scgi uwsgi; do
            echo "    ${t}_temp_path $D/nginx-tmp/$t;"
        done
        echo "    include $D/site.conf;"
        echo "}"
    } >"$D/nginx.conf"
}

start_nginx() {
    nginx_conf
    if ! nginx -t -q -p "$D" -e "$D/log/nginx.log" -c "$D/nginx.conf" \
        >"$D/log/start.log" 2>&1; then
        nok "nginx accepts the config"
        cat "$D/log/start.log"
        return 1
    fi
    chown -R "$RUN_USER" "$D/log"
    nginx -p "$D" -e "$D/log/nginx.log" -c "$D/nginx.conf" \
        >>"$D/log/start.log" 2>&1
    mode_stop_cmd "stop_pidfile '$D/run/nginx.pid'"
    if ! wait_file "$D/run/nginx.pid" || ! wait_tcp "$PORT"; then
        nok "nginx started"
        show_logs
        return 1
    fi
}

restart_nginx() {
    stop_pidfile "$D/run/nginx.pid"
    start_nginx
}

mode_begin nginx-spawn-fcgi
# As nginx/slhook.conf says to start it.
spawn_fcgi_start
ship_conf nginx/slhook.conf
if start_nginx; then
    contract_suite
    web_suite
    # The config's commented login example (nginx-listen has the same
    # config, passing to a port).
    server_login_suite '/^ *#auth_basic slhook;/,/^ *#}$/ s/^( *)#/\1/' \
        restart_nginx
fi
mode_end

mode_begin nginx-listen
FPORT=$(free_port)
# shellcheck disable=SC2086
$AS_USER "$T/bin/slhook.fcgi" -c "$D/slhook.conf" --listen "127.0.0.1:$FPORT" \
    >"$D/log/fcgi.log" 2>&1 &
mode_stop_cmd "stop_pid $!"
check "slhook.fcgi --listen accepts" wait_tcp "$FPORT"
# The config's commented alternative: fastcgi_pass to the port.
ship_conf nginx/slhook.conf
sed -i -e 's|^\( *\)fastcgi_pass unix:|\1#fastcgi_pass unix:|' \
    -e 's|^\( *\)#fastcgi_pass 127|\1fastcgi_pass 127|' "$D/site.conf"
check "site config passes to 127.0.0.1:$FPORT" \
    grep -q "^ *fastcgi_pass 127.0.0.1:$FPORT;" "$D/site.conf"
if start_nginx; then
    contract_suite
    web_suite
fi
mode_end

# The config's optional allow-list: SocketLabs' addresses only (nginx
# refuses before passing the request on: no responder is needed).
mode_begin nginx-allow-list
ship_conf nginx/slhook.conf
allowlist_suite 's/^( *)#((allow|deny) )/\1\2/'
start_nginx && allowlist_expect
mode_end

finish
