/* web.c: routing and guarding GET (and the operator's forms) under the
 * handler's path (web.h). What each path answers is decided by health
 * (web_health.c), metrics.c and page.c; who may ask, here. */
#include "web_int.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "net.h"
#include "page.h"
#include "store.h"

/* The content types this module gives. */
#define TEXT WEB_TEXT
#define PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

static bool
is_root(const char *path)
{
    return path == NULL || path[0] == '\0' || strcmp(path, "/") == 0;
}

static bool
is_method(const char *method, const char *name)
{
    return method != NULL && strcmp(method, name) == 0;
}

static bool
is_get(const char *method)
{
    return is_method(method, "GET") || is_method(method, "HEAD");
}

bool
slh_web_wants(const char *method, const char *path)
{
    return !is_root(path) || is_get(method);
}

static void
not_found(struct slh_web_answer *ans)
{
    slh_web_answer_text(ans, 404, TEXT, "not found\n");
}

static void
bad_method(struct slh_web_answer *ans, const char *allow)
{
    slh_web_answer_text(ans, 405, TEXT, "method not allowed\n");
    ans->allow = allow;
}

/* GET .../metrics: the store's figures and, in slhook.fcgi, its own. */
static void
metrics(const struct slh_web_env *env, struct slh_web_answer *ans)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    FILE *out;

    if (!web_open_store(env->cfg, &sp, ans))
        return;
    out = slh_web_answer_open(ans);
    if (out != NULL &&
        slh_metrics_write(out, sp, env->cfg, env->has_process_metrics,
                          slh_now_ms(), &err) != SLH_OK) {
        fclose(out);
        slh_web_answer_free(ans);
        slh_web_answer_error(ans, 503, err.text);
        out = NULL;
    }
    if (out != NULL)
        slh_web_answer_close(ans, out, 200, PROMETHEUS);
    slh_store_close(sp);
}

/* GET .../api/NAME, and POST .../actions/NAME once the session's token
 * checked out. */
static void
with_store(const struct slh_web_env *env, const struct slh_web_request *req,
           const char *path, const struct web_session *s,
           struct slh_web_answer *ans)
{
    struct slh_store *sp = NULL;
    bool is_known;

    if (!web_open_store(env->cfg, &sp, ans))
        return;
    if (is_method(req->method, "POST"))
        is_known = slh_page_action(env->cfg, sp, req, path, ans);
    else
        is_known = slh_page_api(env->cfg, sp, req, path, s->csrf, ans);
    slh_store_close(sp);
    if (!is_known) {
        slh_web_answer_free(ans);
        not_found(ans);
    }
}

/* POST .../actions/NAME: only with actions = yes and the form's csrf field
 * the session's. */
static void
action(const struct slh_web_env *env, const struct slh_web_request *req,
       const char *path, const struct web_session *s,
       struct slh_web_answer *ans)
{
    if (!env->cfg->admin.has_actions) {
        slh_web_answer_text(ans, 403, TEXT,
                            "actions are off: [admin] actions = yes turns "
                            "them on\n");
        return;
    }
    if (!web_csrf_ok(req, s)) {
        slh_web_answer_text(ans, 403, TEXT,
                            "the form's CSRF token is not this session's: "
                            "reload the page\n");
        return;
    }
    with_store(env, req, path, s, ans);
    ans->is_work_queued = ans->status == 200;
}

/* Past the guard: what the admin asked for. */
static void
admin(const struct slh_web_env *env, const struct slh_web_request *req,
      const char *path, struct slh_web_answer *ans)
{
    struct web_session s;

    if (is_root(path) && (req->path == NULL || req->path[0] == '\0')) {
        /* The page's relative links need the slash after the path. */
        web_to_page(req, "see the page\n", ans);
        return;
    }
    if (!web_session(env->cfg, req, &s, ans))
        return;
    if (is_method(req->method, "POST")) {
        if (strncmp(path, "/actions/", 9) == 0)
            action(env, req, path, &s, ans);
        else
            not_found(ans);
    } else if (!is_get(req->method)) {
        bad_method(ans, "GET, HEAD");
    } else if (strcmp(path, "/metrics") == 0) {
        metrics(env, ans);
    } else if (strncmp(path, "/api/", 5) == 0) {
        with_store(env, req, path, &s, ans);
    } else if (!slh_page_static(path, web_accepts_gzip(req), ans)) {
        not_found(ans);
    }
    /* The page and what it reads start a session; nothing else needs one. */
    if (ans->status == 200 && strncmp(path, "/assets/", 8) != 0 &&
        strcmp(path, "/metrics") != 0)
        web_session_cookie(req, &s, ans);
}

void
slh_web_handle(const struct slh_web_env *env, const struct slh_web_request *req,
               struct slh_web_answer *ans)
{
    const struct slh_admin *a = &env->cfg->admin;
    const char *path =
        req->path != NULL && req->path[0] != '\0' ? req->path : "/";

    memset(ans, 0, sizeof(*ans));
    if (strcmp(path, "/health") == 0) {
        if (is_get(req->method))
            web_health(env->cfg, ans);
        else
            bad_method(ans, "GET, HEAD");
    } else if (!a->is_set) {
        /* As before there was a page: the webhook's own path takes POST
         * only, and nothing lives under it. */
        if (is_root(req->path))
            bad_method(ans, "POST");
        else
            not_found(ans);
    } else if (!slh_cidr_match(a->allow, a->n_allow,
                               req->remote_addr != NULL ? req->remote_addr
                                                        : "")) {
        slh_web_answer_text(ans, 403, TEXT,
                            "forbidden: not in [admin] allow_from\n");
    } else if (strcmp(path, "/login") == 0) {
        web_login(env->cfg, req, ans);
    } else if (strncmp(path, "/assets/", 8) == 0 && is_get(req->method)) {
        /* Code and styles, the same for everyone: the login form's too. */
        if (!slh_page_static(path, web_accepts_gzip(req), ans))
            not_found(ans);
    } else if (!web_token_ok(env->cfg, req)) {
        web_login_needed(req, path, ans);
    } else {
        admin(env, req, path, ans);
    }
    ans->is_head = is_method(req->method, "HEAD");
}

void
slh_web_logline(const struct slh_web_request *req,
                const struct slh_web_answer *ans, double ms, char *buf,
                size_t size)
{
    char path[81] = "/", why[128] = "";
    const char *p = req->path != NULL && req->path[0] != '\0' ? req->path : "";
    size_t i;

    buf[0] = '\0';
    if (ans->status == 200 && strcmp(p, "/health") == 0)
        return;
    for (i = 0; p[i] != '\0' && i < sizeof(path) - 1; i++)
        path[i] = p[i] > ' ' && p[i] < 0x7f ? p[i] : '?';
    if (i > 0)
        path[i] = '\0';
    if (ans->status >= 400 && ans->content_type != NULL &&
        strncmp(ans->content_type, "text/plain", 10) == 0 && ans->len > 0) {
        const char *nl = memchr(ans->body, '\n', ans->len);
        size_t n = nl != NULL ? (size_t)(nl - ans->body) : ans->len;
        snprintf(why, sizeof(why), " (%.*s)", (int)(n < 100 ? n : 100),
                 ans->body);
    }
    snprintf(buf, size, "slhook: %d %.8s %s %.2fms from %s%s", ans->status,
             req->method != NULL ? req->method : "-", path, ms,
             req->remote_addr != NULL ? req->remote_addr : "-", why);
}
