# pg_lib.sh: a PostgreSQL cluster of a test's own, for the tests of the
# PostgreSQL spool. Sourced after lib.sh, once lib_init made $T.
#
# pg_start makes a cluster in $T/pg (initdb, as nobody when the test runs
# as root: the server refuses to run as root), listening on a Unix socket
# in that directory and on no TCP port, and starts it; PG_ARGS is then the
# libpq URI parameters that reach it ("host=DIR&user=slhook", trust
# authentication: the socket directory is the test's). pg_stop stops it;
# lib.sh's trap does not know it, so a test calls pg_stop before finish
# (pg_start installs a trap that stops it on any exit). pg_down stops the
# server at once (immediate: no client is told), pg_up starts it again.
# PG_OPTS, when set, adds to the server's options ("-c name=value ...").
#
# A postgres started here inherits the shell's open descriptors; a test
# that holds one open (a fifo, say) closes it for these calls.

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_DIR=
PG_ARGS=

# pg_as COMMAND...: COMMAND as the cluster's user.
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
            --reset-env -- "$@"
    else
        "$@"
    fi
}

pg_stop() {
    [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
}

pg_start() {
    [ -x "$PG_BIN/initdb" ] || {
        nok "PostgreSQL's initdb not found (tools/install-deps installs it)"
        return 1
    }
    PG_DIR=$T/pg
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chmod 0711 "$T"
        chown nobody "$PG_DIR"
    fi
    trap 'pg_stop; lib_cleanup' EXIT
    (cd "$PG_DIR" && pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U slhook \
        -A trust -E UTF8 --locale=C) >"$T/initdb.log" 2>&1 || {
        cat "$T/initdb.log"
        nok "initdb"
        return 1
    }
    pg_up || return 1
    PG_ARGS="host=$PG_DIR&user=slhook"
}

pg_up() {
    (cd "$PG_DIR" && pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" \
        -l "$PG_DIR/server.log" -w -t 30 \
        -o "-k $PG_DIR -c listen_addresses= -c max_connections=200 ${PG_OPTS:-}" \
        start) >"$T/pg_ctl.log" 2>&1 || {
        cat "$T/pg_ctl.log" "$PG_DIR/server.log" 2>/dev/null
        nok "pg_ctl start"
        return 1
    }
}

pg_down() {
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop \
        >/dev/null 2>&1
}

# pg_psql NAME ARGS...: psql on the database NAME of this cluster, as
# slhook, without ~/.psqlrc.
pg_psql() {
    local db=$1
    shift
    psql -X -q -h "$PG_DIR" -U slhook -d "$db" "$@"
}

# pg_uri NAME: the spool string of the database NAME of this cluster.
pg_uri() {
    echo "postgresql:///$1?$PG_ARGS"
}

# pg_ticks: user+system clock ticks of every postgres process: the
# postmaster (with its reaped children) and the children alive now.
pg_ticks() {
    local pm
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) || {
        echo 0
        return
    }
    # shellcheck disable=SC2002
    cat /proc/[0-9]*/stat 2>/dev/null | sed 's/([^)]*)/x/' | awk -v pm="$pm" '
        $1 == pm { t += $14 + $15 + $16 + $17 }
        $4 == pm { t += $14 + $15 }
        END { print t + 0 }'
}
