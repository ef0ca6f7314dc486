#!/bin/sh
# End to end through Apache httpd 2.4 (event MPM), with the site configs of
# apache/: slhook.cgi under mod_cgid, slhook.fcgi under mod_fcgid, and
# slhook.fcgi --listen behind mod_proxy_fcgi. The same contract suite for
# each, over HTTPS. Apache runs from a main config of our own: nothing of
# /etc/apache2 is read.
. "$(dirname "$0")/e2e_lib.sh"
e2e_init apache2
MODS=/usr/lib/apache2/modules

# apache_conf MODULES [LINES]: a main config loading MODULES (what a2enmod
# would enable), then LINES, then including $D/site.conf.
apache_conf() {
    {
        echo "ServerRoot $D"
        echo "ServerName localhost"
        echo "Listen 127.0.0.1:$PORT"
        echo "PidFile $D/run/apache.pid"
        echo "DefaultRuntimeDir $D/run"
        echo "ErrorLog $D/log/apache.log"
        echo "LogLevel warn"
        for m in mpm_event authz_core authz_host alias env ssl \
            auth_basic authn_core authn_file authz_user $1; do
            echo "LoadModule ${m}_module $MODS/mod_$m.so"
        done
        if [ "$(id -u)" -eq 0 ]; then
            echo "User $RUN_USER"
            echo "Group $(id -gn "$RUN_USER")"
        fi
        echo "DocumentRoot $D/www"
        echo "${2:-}"
        echo "Include $D/site.conf"
    } >"$D/apache.conf"
}

start_apache() {
    if ! apache2 -t -f "$D/apache.conf" >"$D/log/start.log" 2>&1; then
        nok "apache2 accepts the config"
        cat "$D/log/start.log"
        return 1
    fi
    apache2 -f "$D/apache.conf" -k start >>"$D/log/start.log" 2>&1
    mode_stop_cmd "stop_pidfile '$D/run/apache.pid'"
    if ! wait_file "$D/run/apache.pid" || ! wait_tcp "$PORT"; then
        nok "apache2 started"
        show_logs
        return 1
    fi
}

restart_apache() {
    stop_pidfile "$D/run/apache.pid"
    start_apache
}

# The site configs' commented login example.
LOGIN_SED='/^ *#<LocationMatch/,/^ *#<\/LocationMatch>/ s/^( *)#/\1/'

# broken_config_suite: with the config broken (an unknown key) or missing,
# every request gets a complete 503 with Retry-After, five times each, its
# body read: mod_cgid used to cut that answer off (curl exit 18, "transfer
# closed with outstanding read data remaining"; Apache AH00574).
broken_config_suite() {
    cp "$D/slhook.conf" "$D/slhook.conf.good"
    python3 -c 'import sys
sys.stdout.write("{\"Type\":\"Delivered\",\"Pad\":\"%s\"}" % ("x" * 300000))' \
        >"$D/big.json"
    printf 'bogus = 1\n' >>"$D/slhook.conf"
    post_repeat 5 "$URL" application/json "$D/big.json"
    expect_answer "unknown config key: a complete 503 (5 times)" 503 \
        "not configured"
    check "unknown config key: Retry-After" grep -qi '^Retry-After: *[1-9]' \
        "$D/resp.h"
    mv "$D/slhook.conf" "$D/slhook.conf.bad"
    post_repeat 5 "$URL" application/json "$D/big.json"
    expect_answer "missing config: a complete 503 (5 times)" 503 \
        "not configured"
    cp "$D/slhook.conf.good" "$D/slhook.conf"
    chown "$RUN_USER" "$D/slhook.conf"
    chmod 600 "$D/slhook.conf"
}

mode_begin apache-cgi
ship_conf apache/slhook-cgi.conf
apache_conf cgid "ScriptSock $D/run/cgid.sock"
if start_apache; then
    contract_suite
    web_suite
    broken_config_suite
    server_login_suite "$LOGIN_SED" restart_apache
fi
mode_end

mode_begin apache-fcgid
ship_conf apache/slhook-fcgid.conf
apache_conf "fcgid rewrite" "FcgidIPCDir $D/run/fcgid
FcgidProcessTableFile $D/run/fcgid.shm"
if start_apache; then
    contract_suite
    web_suite
    server_login_suite "$LOGIN_SED" restart_apache
fi
mode_end

mode_begin apache-proxy-fcgi
FPORT=$(free_port)
# shellcheck disable=SC2086
$AS_USER "$T/bin/slhook.fcgi" -c "$D/slhook.conf" --listen "127.0.0.1:$FPORT" \
    >"$D/log/fcgi.log" 2>&1 &
mode_stop_cmd "stop_pid $!"
check "slhook.fcgi --listen accepts" wait_tcp "$FPORT"
ship_conf apache/slhook-proxy-fcgi.conf
apache_conf "proxy proxy_fcgi setenvif"
if start_apache; then
    contract_suite
    web_suite
    server_login_suite "$LOGIN_SED" restart_apache
fi
mode_end

# Each config's optional allow-list: SocketLabs' addresses only.
for conf in cgi fcgid proxy-fcgi; do
    mode_begin "apache-$conf-allow-list"
    ship_conf "apache/slhook-$conf.conf"
    allowlist_suite '/^ *Require all granted$/d; s/^( *)#(Require ip)/\1\2/'
    case $conf in
    cgi) apache_conf cgid "ScriptSock $D/run/cgid.sock" ;;
    fcgid) apache_conf "fcgid rewrite" "FcgidIPCDir $D/run/fcgid
FcgidProcessTableFile $D/run/fcgid.shm" ;;
    *) apache_conf "proxy proxy_fcgi setenvif" ;;
    esac
    start_apache && allowlist_expect
    mode_end
done

finish
