/* sql_int.h: the test programs' one-number look into a spool.
 *
 * sql_int(db, sql): the first column of sql's first row as an integer, -1
 * on any error (db NULL included). */
#ifndef SLH_TEST_SQL_INT_H
#define SLH_TEST_SQL_INT_H

#include <stdint.h>

#include <sqlite3.h>

static int64_t
sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (db != NULL && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#endif
