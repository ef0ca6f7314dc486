/* store_pg_open.c: connecting to a PostgreSQL spool: the URI masked, the
 * connection's bounds, the database and the schema made or upgraded, and
 * what `check` and GET .../health ask of it. */
#include "store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* Version 1, as it was made (later versions are upgrades of it, below).
 * The functions resolve table names through the search_path
 * of the session that runs them, as every statement of ours does. */
static const char schema_sql[] =
    "CREATE TABLE slhook_meta (one boolean PRIMARY KEY DEFAULT true"
    " CHECK (one), version integer NOT NULL);"
    "CREATE TABLE slhook_event (seq bigint GENERATED ALWAYS AS IDENTITY"
    " PRIMARY KEY, id text COLLATE \"C\" NOT NULL, at bigint NOT NULL,"
    " type text NOT NULL, tracking integer NOT NULL,"
    " received bigint NOT NULL, body text NOT NULL, UNIQUE (at, id));"
    "CREATE INDEX slhook_event_received ON slhook_event (received, seq);"
    "CREATE INDEX slhook_event_message_id"
    " ON slhook_event (((body::jsonb) ->> 'MessageId'));"
    "CREATE TABLE slhook_delivery (dest text COLLATE \"C\" NOT NULL,"
    " seq bigint NOT NULL, state smallint NOT NULL, due bigint NOT NULL,"
    " attempts integer NOT NULL, last_status integer, last_error text,"
    " done bigint, owner bigint, PRIMARY KEY (dest, seq));"
    "CREATE INDEX slhook_delivery_due ON slhook_delivery (dest, state, due);"
    "CREATE INDEX slhook_delivery_owner ON slhook_delivery (owner)"
    " WHERE owner IS NOT NULL;"
    "CREATE TABLE slhook_throttle (dest text COLLATE \"C\" PRIMARY KEY,"
    " failures integer NOT NULL, opened bigint NOT NULL,"
    " probes integer NOT NULL, probe_at bigint NOT NULL,"
    " probing boolean NOT NULL, pace bigint NOT NULL);"
    "CREATE TABLE slhook_tally (dest text COLLATE \"C\" NOT NULL,"
    " shard integer NOT NULL, delivered bigint NOT NULL,"
    " PRIMARY KEY (dest, shard));"
    "CREATE TABLE slhook_owner (token bigint PRIMARY KEY,"
    " pid integer NOT NULL, since bigint NOT NULL, host text NOT NULL,"
    " client_pid integer NOT NULL);"
    /* One function for the three triggers: each branch reads only the
     * transition tables its trigger has. */
    "CREATE FUNCTION slhook_delivery_changed() RETURNS trigger"
    " LANGUAGE plpgsql AS $f$ BEGIN"
    " IF TG_OP = 'INSERT' THEN"
    "  INSERT INTO slhook_tally SELECT dest, pg_backend_pid() % 8, count(*)"
    "  FROM new_rows WHERE state = 1 GROUP BY dest"
    "  ON CONFLICT (dest, shard) DO UPDATE"
    "  SET delivered = slhook_tally.delivered + excluded.delivered;"
    "  PERFORM pg_notify('slhook', '') WHERE EXISTS (SELECT FROM new_rows);"
    " ELSIF TG_OP = 'DELETE' THEN"
    "  INSERT INTO slhook_tally SELECT dest, pg_backend_pid() % 8, -count(*)"
    "  FROM old_rows WHERE state = 1 GROUP BY dest"
    "  ON CONFLICT (dest, shard) DO UPDATE"
    "  SET delivered = slhook_tally.delivered + excluded.delivered;"
    "  PERFORM pg_notify('slhook', '') WHERE EXISTS (SELECT FROM old_rows);"
    " ELSE"
    "  INSERT INTO slhook_tally SELECT dest, pg_backend_pid() % 8, sum(n)"
    "  FROM (SELECT dest, 1 AS n FROM new_rows WHERE state = 1"
    "  UNION ALL SELECT dest, -1 FROM old_rows WHERE state = 1) c"
    "  GROUP BY dest HAVING sum(n) <> 0"
    "  ON CONFLICT (dest, shard) DO UPDATE"
    "  SET delivered = slhook_tally.delivered + excluded.delivered;"
    "  PERFORM pg_notify('slhook', '') WHERE EXISTS (SELECT FROM new_rows);"
    " END IF; RETURN NULL; END $f$;"
    "CREATE TRIGGER slhook_delivery_insert AFTER INSERT ON slhook_delivery"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION slhook_delivery_changed();"
    "CREATE TRIGGER slhook_delivery_update AFTER UPDATE ON slhook_delivery"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION slhook_delivery_changed();"
    "CREATE TRIGGER slhook_delivery_delete AFTER DELETE ON slhook_delivery"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION slhook_delivery_changed();"
    /* Whether an owner is dead: its lock ours, trying for up to wait_ms
     * (store_pg.h: a backend whose client died a moment ago). */
    "CREATE FUNCTION slhook_owner_gone(tok bigint, wait_ms integer)"
    " RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN"
    " FOR i IN 0..wait_ms LOOP"
    "  IF pg_try_advisory_xact_lock(" STR(
        SLH_PG_LOCK_CLASS) ", tok::integer) THEN RETURN true; END IF;"
                           "  IF i < wait_ms THEN PERFORM pg_sleep(0.001); "
                           "END IF;"
                           " END LOOP; RETURN false; END $f$;"
                           "INSERT INTO slhook_meta (version) VALUES (1);";

/* Version 2: owners' beats and the one purge schedule (store_pg.h). */
static const char upgrade_2_sql[] =
    "ALTER TABLE slhook_owner ADD COLUMN seen bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE slhook_meta ADD COLUMN last_purge bigint NOT NULL DEFAULT 0;"
    "UPDATE slhook_meta SET version = 2;";

/* Version 3: each event's MessageId a column of its own, written with it
 * (store_pg_put.c), in place of the index on an expression that parsed
 * every body as jsonb on the receive path. Rows from before have NULL
 * there, until slh_pg_index() reads it from their bodies; a partial index
 * finds those (and costs a new row nothing: its message_id is not NULL).
 * Both indexes are made over the rows already there: the first reads
 * the table and keeps nothing, the second keeps one entry an old event. */
static const char upgrade_3_sql[] =
    "ALTER TABLE slhook_event ADD COLUMN message_id text;"
    "DROP INDEX slhook_event_message_id;"
    "CREATE INDEX slhook_event_message ON slhook_event (message_id)"
    " WHERE message_id IS NOT NULL;"
    "CREATE INDEX slhook_event_unread ON slhook_event (seq)"
    " WHERE message_id IS NULL;"
    "UPDATE slhook_meta SET version = 3;";

/* What makes each version from the one before, [0] from none. */
static const char *const upgrades[SLH_PG_VERSION] = {schema_sql, upgrade_2_sql,
                                                     upgrade_3_sql};

/*
 * A connection to uri (to the database dbname instead, when not NULL):
 * bounded waits unless the URI sets its own (store_pg.h), UTF-8 always.
 * Keywords before dbname are defaults the URI may override; those after
 * it override the URI.
 */
static PGconn *
connect_to(const char *uri, const char *dbname)
{
    const char *keys[] = {"connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "fallback_application_name",
                          "dbname",
                          "client_encoding",
                          dbname != NULL ? "dbname" : NULL,
                          NULL};
    const char *vals[] = {"5",      "10", "5",    "3",    "10000",
                          "slhook", uri,  "UTF8", dbname, NULL};

    return PQconnectdbParams(keys, vals, 1);
}

/* lib/ prints nothing: libpq's own processor would write the server's
 * notices ("terminating connection due to immediate shutdown") to
 * stderr, which is a front end's to use. What matters comes back as an
 * error. */
static void
no_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The error of a connection that failed, naming the spool; frees conn. */
static enum slh_err
connect_fail(struct slh_pg *pg, PGconn *conn, struct slh_error *err)
{
    char text[SLH_ERROR_TEXT];

    snprintf(text, sizeof(text), "%s",
             conn != NULL ? PQerrorMessage(conn) : "out of memory");
    for (char *p = text; *p != '\0'; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    PQfinish(conn);
    return slh_error_set(err, SLH_ESTORE, "spool %s: cannot connect: %s",
                         pg->where, text);
}

/* The database the URI names, a new string (NULL: none named, or out of
 * memory). */
static char *
db_name(const char *uri)
{
    PQconninfoOption *opts = PQconninfoParse(uri, NULL);
    char *name = NULL;

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL &&
            o->val[0] != '\0') {
            name = strdup(o->val);
            break;
        }
    PQconninfoFree(opts);
    return name;
}

/* What probe_db() found of the database the URI names: there after all
 * (DB_THERE) when another process made it since our connection failed. */
enum db_found { DB_UNKNOWN, DB_MISSING, DB_MADE, DB_THERE };

/* CREATE DATABASE name on conn: true when made, or made by another
 * process meanwhile (duplicate_database; unique_violation when both
 * looked before either had made it: hosts starting at once). */
static bool
make_db(PGconn *conn, const char *name)
{
    char *ident = PQescapeIdentifier(conn, name, strlen(name));
    char sql[256];
    PGresult *r = NULL;
    const char *state;
    bool is_made = false;

    if (ident != NULL && snprintf(sql, sizeof(sql), "CREATE DATABASE %s",
                                  ident) < (int)sizeof(sql)) {
        r = PQexec(conn, sql);
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        is_made = PQresultStatus(r) == PGRES_COMMAND_OK ||
                  (state != NULL && (strcmp(state, "42P04") == 0 ||
                                     strcmp(state, "23505") == 0));
    }
    PQclear(r);
    PQfreemem(ident);
    return is_made;
}

/* After a connection failed: whether the database the URI names is
 * missing (asked through the "postgres" one), and when is_making, makes
 * it; or there by now, which is worth one more try. DB_UNKNOWN when that
 * cannot be told: the first failure stands. */
static enum db_found
probe_db(struct slh_pg *pg, bool is_making)
{
    char *name = db_name(pg->uri);
    PGconn *conn = name != NULL ? connect_to(pg->uri, "postgres") : NULL;
    const char *vals[1] = {name};
    enum db_found found = DB_UNKNOWN;

    if (conn != NULL && PQstatus(conn) == CONNECTION_OK) {
        PGresult *r = PQexecParams(conn,
                                   "SELECT 1 FROM pg_database"
                                   " WHERE datname = $1",
                                   1, NULL, vals, NULL, NULL, 0);

        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            found = PQntuples(r) == 0 ? DB_MISSING : DB_THERE;
        PQclear(r);
    }
    if (found == DB_MISSING && is_making && make_db(conn, name))
        found = DB_MADE;
    PQfinish(conn);
    free(name);
    return found;
}

/* The schema version of the database conn is on: 0 when it has none. */
static enum slh_err
schema_version(struct slh_pg *pg, int *version, struct slh_error *err)
{
    PGresult *r = PQexec(pg->conn, "SELECT version FROM slhook_meta");
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    enum slh_err rc = SLH_OK;

    *version = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        *version = (int)slh_pg_i64(r, 0, 0);
    else if (state == NULL || strcmp(state, "42P01") != 0) /* no table */
        rc = slh_pg_fail(pg, "schema", r, err);
    PQclear(r);
    return rc;
}

/* The version of the schema inside a transaction, where a statement that
 * fails (no table) would end it: 0 when slhook_meta is not there. */
static enum slh_err
version_in_tx(struct slh_pg *pg, int *version, struct slh_error *err)
{
    PGresult *r = PQexec(pg->conn, "SELECT to_regclass('slhook_meta')"
                                   " IS NOT NULL");
    bool is_made = PQresultStatus(r) == PGRES_TUPLES_OK &&
                   strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    enum slh_err rc = SLH_OK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = slh_pg_fail(pg, "schema", r, err);
    PQclear(r);
    *version = 0;
    if (rc == SLH_OK && is_made)
        rc = schema_version(pg, version, err);
    return rc;
}

/* Makes or upgrades the schema in one transaction under the schema's
 * advisory lock, from whatever version another process left it at while
 * we waited for the lock. */
static enum slh_err
make_schema(struct slh_pg *pg, struct slh_error *err)
{
    int version = 0;
    bool own;
    enum slh_err rc = slh_pg_begin(pg, "schema", SLH_PG_SYNC_ON, &own, err);

    if (rc != SLH_OK)
        return rc;
    rc = slh_pg_exec(
        pg, "schema",
        "SELECT pg_advisory_xact_lock(" STR(SLH_PG_LOCK_CLASS) ", 0)", NULL,
        NULL, err);
    if (rc == SLH_OK)
        rc = version_in_tx(pg, &version, err);
    for (; rc == SLH_OK && version >= 0 && version < SLH_PG_VERSION;
         version++) {
        PGresult *r = PQexec(pg->conn, upgrades[version]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = slh_pg_fail(
                pg, version == 0 ? "making the schema" : "upgrading the schema",
                r, err);
        PQclear(r);
    }
    rc = slh_pg_end(pg, own, rc, err);
    if (rc == SLH_OK)
        rc = schema_version(pg, &version, err);
    if (rc == SLH_OK && version != SLH_PG_VERSION)
        rc = slh_error_set(err, SLH_ESTORE,
                           "spool %s: schema %d after making it", pg->where,
                           version);
    return rc;
}

/* The schema as pg->how allows: there, made, or SLH_ENOTFOUND. Newer than
 * ours is refused: an older slhook must not write what it does not know. */
static enum slh_err
check_schema(struct slh_pg *pg, struct slh_error *err)
{
    int version = 0;
    enum slh_err rc = schema_version(pg, &version, err);

    if (rc != SLH_OK || version == SLH_PG_VERSION)
        return rc;
    if (version > SLH_PG_VERSION)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: schema %d is newer than this slhook's "
                             "(%d): upgrade slhook",
                             pg->where, version, SLH_PG_VERSION);
    if (version == 0 && pg->how == SLH_STORE_EXISTING)
        return slh_error_set(err, SLH_ENOTFOUND,
                             "spool %s: no spool yet (no slhook tables)",
                             pg->where);
    return make_schema(pg, err);
}

enum slh_err
slh_pg_session(struct slh_pg *pg, struct slh_error *err)
{
    PGresult *r =
        PQexec(pg->conn, pg->is_deliverer ? "SET synchronous_commit = off;"
                                            " SET lock_timeout = '10s'"
                                          : "SET synchronous_commit = on;"
                                            " SET lock_timeout = '10s'");
    enum slh_err rc = SLH_OK;

    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = slh_pg_fail(pg, "setup", r, err);
    PQclear(r);
    if (rc == SLH_OK && pg->is_listening)
        rc = slh_pg_exec(pg, "setup", "LISTEN slhook", NULL, NULL, err);
    return rc;
}

enum slh_err
slh_pg_connect(struct slh_pg *pg, PGconn **out, struct slh_error *err)
{
    PGconn *conn = connect_to(pg->uri, NULL), *kept = pg->conn;
    enum slh_err rc;

    *out = NULL;
    /* Told apart on the first connection only: a server that is down
     * would cost every reconnection two waits. */
    if ((conn == NULL || PQstatus(conn) != CONNECTION_OK) && !pg->is_open) {
        enum db_found found = probe_db(pg, pg->how == SLH_STORE_CREATE);

        if (found == DB_MISSING && pg->how == SLH_STORE_EXISTING) {
            PQfinish(conn);
            return slh_error_set(err, SLH_ENOTFOUND,
                                 "spool %s: no spool yet (no database)",
                                 pg->where);
        }
        if (found == DB_MADE || found == DB_THERE) {
            PQfinish(conn);
            conn = connect_to(pg->uri, NULL);
        }
    }
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return connect_fail(pg, conn, err);
    PQsetNoticeProcessor(conn, no_notice, NULL);
    /* The schema is looked at on the new connection, the old one kept
     * until it works. */
    pg->conn = conn;
    pg->is_connecting = true;
    rc = slh_pg_session(pg, err);
    if (rc == SLH_OK)
        rc = check_schema(pg, err);
    pg->is_connecting = false;
    pg->conn = kept;
    if (rc != SLH_OK) {
        PQfinish(conn);
        return rc;
    }
    *out = conn;
    return SLH_OK;
}

static const char describe_sql[] =
    "SELECT current_setting('server_version'),"
    " (SELECT version FROM slhook_meta), current_database(), current_user";

enum slh_err
slh_pg_describe(struct slh_store *st, char *buf, size_t size,
                struct slh_error *err)
{
    PGresult *r = NULL;
    enum slh_err rc =
        slh_pg_exec(slh_pg(st), "describe", describe_sql, NULL, &r, err);

    if (rc == SLH_OK)
        snprintf(buf, size, "PostgreSQL %s, schema %s, database %s as %s",
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                 PQgetvalue(r, 0, 3));
    PQclear(r);
    return rc;
}

/* A destination whose tally (the sum of its shards) is not its count of
 * delivered rows: the triggers keep them equal. */
static const char tally_sql[] =
    "SELECT dest FROM (SELECT dest, count(*) AS n FROM slhook_delivery"
    " WHERE state = 1 GROUP BY dest) c"
    " FULL JOIN (SELECT dest, sum(delivered) AS t FROM slhook_tally"
    " GROUP BY dest) t USING (dest)"
    " WHERE coalesce(n, 0) <> coalesce(t, 0) LIMIT 1";

enum slh_err
slh_pg_verify(struct slh_store *st, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    PGresult *r = NULL;
    int version = 0;
    enum slh_err rc = schema_version(pg, &version, err);

    if (rc == SLH_OK && version != SLH_PG_VERSION)
        return slh_error_set(err, SLH_ESTORE, "spool %s: schema %d, not %d",
                             pg->where, version, SLH_PG_VERSION);
    if (rc == SLH_OK)
        rc = slh_pg_exec(pg, "verify", tally_sql, NULL, &r, err);
    if (rc == SLH_OK && PQntuples(r) > 0)
        rc = slh_error_set(err, SLH_ESTORE,
                           "spool %s: the tally of delivered rows for %s "
                           "disagrees with the rows",
                           pg->where, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* What a write needs and a connection does not show: a server that takes
 * writes (not a standby, not read-only). One round trip. */
static const char health_sql[] =
    "SELECT pg_is_in_recovery()"
    " OR current_setting('default_transaction_read_only') = 'on'";

enum slh_err
slh_pg_health(struct slh_store *st, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    PGresult *r = NULL;
    enum slh_err rc = slh_pg_exec(pg, "health", health_sql, NULL, &r, err);

    if (rc == SLH_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        rc = slh_error_set(err, SLH_ESTORE,
                           "spool %s: the server takes no writes (a standby, "
                           "or read-only)",
                           pg->where);
    PQclear(r);
    return rc;
}
