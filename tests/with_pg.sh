#!/bin/sh
# with_pg.sh COMMAND...: COMMAND run with SLH_TEST_PG set to the URI
# parameters of a PostgreSQL cluster of its own (tests/pg_lib.sh), which
# is stopped afterwards; COMMAND's exit status. For running test_store
# outside tests/t_pg_store.sh (make valgrind does).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init with_pg
pg_start || finish
SLH_TEST_PG=$PG_ARGS "$@"
rc=$?
pg_stop
exit $rc
