/* page.c: the operator's page (page.h): its files from the binary, and
 * the paths of its JSON and its actions. What the JSON holds is
 * page_api.c's. */
#include "page.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "page_int.h"
#include "store.h"
#include "when.h"

#define JSON_TYPE "application/json"

/* The files of page_assets.S: NAME and NAME_gz, each with its end. */
#define ASSET_SYMS(name)                                                       \
    extern const unsigned char slh_asset_##name[], slh_asset_##name##_end[],   \
        slh_asset_##name##_gz[], slh_asset_##name##_gz_end[]
ASSET_SYMS(page_html);
ASSET_SYMS(events_html);
ASSET_SYMS(page_css);
ASSET_SYMS(page_js);
ASSET_SYMS(uplot_js);
ASSET_SYMS(uplot_css);

struct asset {
    const char *path; /* under "/assets/"; "" for the documents */
    const char *type;
    const unsigned char *raw, *raw_end, *gz, *gz_end;
};
#define ASSET(path, type, name)                                                \
    {                                                                          \
        path, type, slh_asset_##name, slh_asset_##name##_end,                  \
            slh_asset_##name##_gz, slh_asset_##name##_gz_end                   \
    }

static const struct asset page_html =
    ASSET("", "text/html; charset=utf-8", page_html);
/* The same document with its assets one level up ("../assets/"), so that
 * they resolve at the handler's own path wherever it is mounted; page.js
 * finds that path from its own place likewise. */
static const struct asset events_html =
    ASSET("", "text/html; charset=utf-8", events_html);
static const struct asset assets[] = {
    ASSET("page.css", "text/css; charset=utf-8", page_css),
    ASSET("page.js", "text/javascript; charset=utf-8", page_js),
    ASSET("uPlot.min.css", "text/css; charset=utf-8", uplot_css),
    ASSET("uPlot.iife.min.js", "text/javascript; charset=utf-8", uplot_js),
};

/* The documents are revalidated; the assets' URLs in them carry a hash of
 * their bytes (the Makefile's), so an asset is kept as long as it lasts. */
static const char doc_cache[] = "no-cache";
static const char asset_cache[] = "private, max-age=31536000, immutable";

static void
serve(const struct asset *a, bool gzip_ok, const char *cache,
      struct slh_web_answer *ans)
{
    size_t raw = (size_t)(a->raw_end - a->raw);
    size_t gz = (size_t)(a->gz_end - a->gz);

    if (gzip_ok && gz < raw) {
        slh_web_answer_static(ans, 200, a->type, a->gz, gz);
        ans->encoding = "gzip";
    } else {
        slh_web_answer_static(ans, 200, a->type, a->raw, raw);
    }
    ans->cache_control = cache;
}

bool
slh_page_static(const char *path, bool gzip_ok, struct slh_web_answer *ans)
{
    static const char prefix[] = "/assets/";
    /* The event's id: what follows "/events/", one segment. */
    const char *id = strncmp(path, "/events/", 8) == 0 ? path + 8 : NULL;

    if (strcmp(path, "/") == 0) {
        serve(&page_html, gzip_ok, doc_cache, ans);
        return true;
    }
    if (id != NULL && id[0] != '\0' && id[strcspn(id, "/")] == '\0') {
        serve(&events_html, gzip_ok, doc_cache, ans);
        return true;
    }
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
        if (strcmp(path + sizeof(prefix) - 1, assets[i].path) == 0) {
            serve(&assets[i], gzip_ok, asset_cache, ans);
            return true;
        }
    return false;
}

/* Answers o (stolen) as JSON, or err's reason as {"error"} when o is NULL:
 * 400 for a bad argument, 404 for nothing found, else 503. */
static void
answer_json(struct slh_web_answer *ans, json_t *o, const struct slh_error *err)
{
    int status = 200;
    FILE *f;

    if (o == NULL) {
        status = err->code == SLH_EINVAL      ? 400
                 : err->code == SLH_ENOTFOUND ? 404
                                              : 503;
        o = json_pack("{s:s}", "error", err->text);
        if (o == NULL) {
            slh_web_answer_error(ans, 503, "out of memory");
            return;
        }
    }
    f = slh_web_answer_open(ans);
    if (f != NULL && json_dumpf(o, f, JSON_COMPACT) != 0) {
        fclose(f);
        slh_web_answer_error(ans, 503, "out of memory");
    } else if (f != NULL) {
        slh_web_answer_close(ans, f, status, JSON_TYPE);
    }
    json_decref(o);
    ans->cache_control = "no-store";
}

/* The value of name in req's query string into out; "" when absent. */
static void
query_value(const struct slh_web_request *req, const char *name, char *out,
            size_t size)
{
    const char *q = req->query != NULL ? req->query : "";

    if (!slh_web_form_value(q, strlen(q), name, out, size))
        out[0] = '\0';
}

static json_t *
session_json(const struct slh_config *cfg, const char *csrf,
             struct slh_error *err)
{
    json_t *o =
        json_pack("{s:o, s:b, s:s}", "csrf",
                  csrf != NULL ? json_string(csrf) : json_null(), "actions",
                  cfg->admin.has_actions, "version", SLH_VERSION);

    if (o == NULL)
        slh_error_set(err, SLH_ENOMEM, "out of memory");
    return o;
}

/* /api/chart?hours=N: 1 to SLH_PAGE_HOURS_MAX, else the default. */
static int
chart_hours(const struct slh_web_request *req)
{
    char buf[8], *end;
    long hours;

    query_value(req, "hours", buf, sizeof(buf));
    hours = strtol(buf, &end, 10);
    if (end == buf || *end != '\0' || hours < 1 || hours > SLH_PAGE_HOURS_MAX)
        hours = SLH_PAGE_HOURS;
    return (int)hours;
}

bool
slh_page_api(const struct slh_config *cfg, struct slh_store *sp,
             const struct slh_web_request *req, const char *path,
             const char *csrf, struct slh_web_answer *ans)
{
    struct slh_error err = {0};
    char q[512];
    json_t *o;

    if (strcmp(path, "/api/session") == 0) {
        o = session_json(cfg, csrf, &err);
    } else if (strcmp(path, "/api/status") == 0) {
        o = slh_page_status(cfg, sp, slh_now_ms(), &err);
    } else if (strcmp(path, "/api/chart") == 0) {
        o = slh_page_chart(sp, chart_hours(req), slh_now_ms(), &err);
    } else if (strcmp(path, "/api/failures") == 0) {
        o = slh_page_failures(sp, &err);
    } else if (strcmp(path, "/api/search") == 0) {
        query_value(req, "q", q, sizeof(q));
        o = slh_page_search(sp, q, &err);
    } else if (strcmp(path, "/api/event") == 0) {
        query_value(req, "id", q, sizeof(q));
        o = slh_page_event(sp, q, &err);
    } else {
        return false;
    }
    answer_json(ans, o, &err);
    return true;
}

/* The configured destination the form's dest names, else NULL with err. */
static const struct slh_dest *
form_dest(const struct slh_config *cfg, const struct slh_web_request *req,
          char *name, size_t size, struct slh_error *err)
{
    const struct slh_dest *d = NULL;

    if (slh_web_form_value(req->body, req->body_len, "dest", name, size))
        d = slh_config_dest(cfg, name);
    if (d == NULL)
        slh_error_set(err, SLH_EINVAL, "no such destination in the config");
    return d;
}

static json_t *
retry_action(const struct slh_config *cfg, struct slh_store *sp,
             const struct slh_web_request *req, struct slh_error *err)
{
    char name[256];
    size_t n = 0;
    const struct slh_dest *d = form_dest(cfg, req, name, sizeof(name), err);

    if (d == NULL ||
        slh_store_retry(sp, d->name, slh_now_ms(), &n, err) != SLH_OK)
        return NULL;
    return json_pack("{s:s, s:I}", "destination", d->name, "retried",
                     (json_int_t)n);
}

/* A form's TIME (when.h) into *ms; "" is 0 unless required. */
static bool
form_time(const struct slh_web_request *req, const char *name, int64_t now,
          bool is_required, int64_t *ms, struct slh_error *err)
{
    struct slh_error why = {0};
    char text[64];

    *ms = 0;
    if (!slh_web_form_value(req->body, req->body_len, name, text,
                            sizeof(text)) ||
        text[0] == '\0') {
        if (is_required)
            slh_error_set(err, SLH_EINVAL, "replay: give %s", name);
        return !is_required;
    }
    if (slh_when_parse(text, now, ms, &why) == SLH_OK)
        return true;
    slh_error_set(err, SLH_EINVAL, "%s: %.200s", name, why.text);
    return false;
}

/* Queues again what dest was sent, or has not been, of a window. */
static json_t *
replay_action(const struct slh_config *cfg, struct slh_store *sp,
              const struct slh_web_request *req, struct slh_error *err)
{
    char name[256];
    int64_t now = slh_now_ms();
    struct slh_store_replay r = {0};
    size_t n = 0;

    r.dest = form_dest(cfg, req, name, sizeof(name), err);
    if (r.dest == NULL || !form_time(req, "since", now, true, &r.since, err) ||
        !form_time(req, "until", now, false, &r.until, err))
        return NULL;
    if (r.until != 0 && r.until <= r.since) {
        slh_error_set(err, SLH_EINVAL, "replay: until is not after since");
        return NULL;
    }
    if (slh_store_requeue(sp, &r, now, &n, err) != SLH_OK)
        return NULL;
    return json_pack("{s:s, s:o, s:o, s:I}", "destination", r.dest->name,
                     "since", json_integer(r.since), "until",
                     r.until != 0 ? json_integer(r.until) : json_null(),
                     "queued", (json_int_t)n);
}

bool
slh_page_action(const struct slh_config *cfg, struct slh_store *sp,
                const struct slh_web_request *req, const char *path,
                struct slh_web_answer *ans)
{
    struct slh_error err = {0};
    json_t *o = NULL;
    bool is_retry = strcmp(path, "/actions/retry") == 0;

    if (!is_retry && strcmp(path, "/actions/replay") != 0)
        return false;
    if (sp == NULL)
        slh_error_set(&err, SLH_ENOTFOUND, "no spool yet: nothing stored");
    else if (is_retry)
        o = retry_action(cfg, sp, req, &err);
    else
        o = replay_action(cfg, sp, req, &err);
    if (o == NULL && err.code == SLH_OK)
        slh_error_set(&err, SLH_ENOMEM, "out of memory");
    answer_json(ans, o, &err);
    return true;
}
