#!/bin/sh
# t_pg_store.sh: the store conformance suite (tests/test_store.c) against
# both backends: SQLite, and PostgreSQL on a cluster started here
# (tests/pg_lib.sh) and stopped at the end. test_store's own summary is
# the last line; a cluster that does not start is a failure.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init pg_store

prog=$B/tests/test_store
[ -x "$prog" ] || (cd "$ROOT" && make -s "$prog" B="$B") >/dev/null ||
    abort "build $prog"
pg_start || finish
echo "a PostgreSQL cluster of our own: $PG_DIR"
SLH_TEST_PG=$PG_ARGS "$prog"
rc=$?
pg_stop
exit $rc
