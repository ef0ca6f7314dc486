/* web.c, web_auth.c, web_health.c, web_answer.c: which requests are the
 * web module's, who may see what, the token, the login cookie, the CSRF
 * token, health, and the answer's head. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "store.h"
#include "web.h"

static char tmpdir[] = "/tmp/slh-test-web-XXXXXX";

/* The request every test starts from: GET, from loopback, mounted at /s. */
static struct slh_web_request
get(const char *path)
{
    return (struct slh_web_request){.method = "GET",
                                    .path = path,
                                    .script_name = "/s",
                                    .remote_addr = "127.0.0.1"};
}

static bool
has(const struct slh_web_answer *ans, const char *text)
{
    size_t n = strlen(text);

    for (size_t i = 0; ans->body != NULL && i + n <= ans->len; i++)
        if (memcmp(ans->body + i, text, n) == 0)
            return true;
    return false;
}

/* The answer's head as a string, for looking for a header. */
static bool
head_has(const struct slh_web_answer *ans, const char *text)
{
    char head[4096];
    size_t n = slh_web_format_head(ans, head, sizeof(head) - 1);

    head[n] = '\0';
    return n > 0 && strstr(head, text) != NULL;
}

static int
status_of(const struct slh_config *cfg, const struct slh_web_request *req)
{
    struct slh_web_env env = {.cfg = cfg};
    struct slh_web_answer ans;
    int status;

    slh_web_handle(&env, req, &ans);
    status = ans.status;
    slh_web_answer_free(&ans);
    return status;
}

static bool
load(struct slh_config *cfg, const char *admin)
{
    struct slh_error err = {0};
    char text[1024];

    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = k1-0123456789\nspool = %s/spool\n%s",
             tmpdir, admin);
    return CHECK(slh_config_parse(cfg, text, "web.conf", &err) == SLH_OK,
                 "config: %s", err.text);
}

static void
test_wants(void)
{
    CHECK(!slh_web_wants("POST", NULL) && !slh_web_wants("POST", "") &&
              !slh_web_wants("POST", "/"),
          "a POST to the handler's own path is the webhook");
    CHECK(!slh_web_wants("PUT", "") && !slh_web_wants(NULL, NULL),
          "other methods there stay the handler's (405)");
    CHECK(slh_web_wants("GET", "") && slh_web_wants("HEAD", "/") &&
              slh_web_wants("GET", "/health") &&
              slh_web_wants("POST", "/actions/retry") &&
              slh_web_wants("POST", "/elsewhere"),
          "GET anywhere, and any method under the path");
}

/* Without [admin]: health only; the rest is as it was (405, 404). */
static void
test_no_admin(void)
{
    struct slh_config cfg;
    struct slh_web_request req = get("/health");
    struct slh_web_env env = {.cfg = &cfg};
    struct slh_web_answer ans;

    if (!load(&cfg, ""))
        return;
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 200 && has(&ans, "ok"), "health open: %d", ans.status);
    slh_web_answer_free(&ans);
    req = get("");
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 405 && head_has(&ans, "Allow: POST\r\n"),
          "GET on the webhook: 405, Allow: POST");
    slh_web_answer_free(&ans);
    req = get("/metrics");
    CHECK(status_of(&cfg, &req) == 404, "metrics: 404 without [admin]");
    req = get("/");
    CHECK(status_of(&cfg, &req) == 405, "the page: not there");
    req.method = "POST";
    req.path = "/health";
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 405 && head_has(&ans, "Allow: GET, HEAD\r\n"),
          "POST /health: 405");
    slh_web_answer_free(&ans);
    slh_config_free(&cfg);
}

static void
test_allow_from(void)
{
    struct slh_config cfg;
    struct slh_web_request req = get("/metrics");

    if (!load(&cfg, "[admin]\nallow_from = 10.9.0.0/16\n"))
        return;
    CHECK(status_of(&cfg, &req) == 403, "loopback not listed: 403");
    req.remote_addr = "10.9.1.2";
    CHECK(status_of(&cfg, &req) == 200, "listed: 200");
    req.remote_addr = NULL;
    CHECK(status_of(&cfg, &req) == 403, "no REMOTE_ADDR: 403");
    req = get("/health");
    req.remote_addr = "192.0.2.1";
    CHECK(status_of(&cfg, &req) == 200, "health stays open to all");
    slh_config_free(&cfg);
}

static void
test_page_headers(void)
{
    struct slh_config cfg;
    struct slh_web_request req = get("");
    struct slh_web_env env = {.cfg = &cfg};
    struct slh_web_answer ans;

    if (!load(&cfg, "[admin]\n"))
        return;
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 303 && strcmp(ans.location, "/s/") == 0,
          "the bare path sends to the page's: %d %s", ans.status, ans.location);
    slh_web_answer_free(&ans);
    req = get("/");
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 200 && strncmp(ans.content_type, "text/html", 9) == 0,
          "the page: %d", ans.status);
    CHECK(head_has(&ans, "Content-Security-Policy: default-src 'self'") &&
              head_has(&ans, "X-Frame-Options: DENY") &&
              head_has(&ans, "X-Content-Type-Options: nosniff"),
          "the page's guards");
    CHECK(head_has(&ans, "Set-Cookie: slhook_session=") &&
              head_has(&ans, "; Path=/s/; HttpOnly; SameSite=Strict\r\n"),
          "a session begins, its cookie kept to the handler's path");
    slh_web_answer_free(&ans);
    req.https = "on";
    req.method = "HEAD";
    slh_web_handle(&env, &req, &ans);
    CHECK(head_has(&ans, "; Secure") && ans.is_head && ans.len > 0,
          "over TLS the cookie is Secure; HEAD tells the length");
    slh_web_answer_free(&ans);
    req = get("/metrics");
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 200 && has(&ans, "# TYPE ") &&
              !head_has(&ans, "Set-Cookie"),
          "metrics: exposition, no session");
    slh_web_answer_free(&ans);
    req.method = "DELETE";
    CHECK(status_of(&cfg, &req) == 405, "DELETE: 405");
    req = get("/nothing/here");
    CHECK(status_of(&cfg, &req) == 404, "unknown path: 404");
    slh_config_free(&cfg);
}

/* The login form's cookie, from a POST /login answer's Set-Cookie. */
static bool
login_cookie(const struct slh_web_answer *ans, char *out, size_t size)
{
    const char *v = ans->set_cookie[0];
    size_t n = strcspn(v, ";");

    if (strncmp(v, "slhook_login=", 13) != 0 || n >= size)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static void
test_token(void)
{
    static const char token[] = "tok-0123456789abcdef";
    struct slh_config cfg;
    struct slh_web_request req = get("/metrics");
    struct slh_web_env env = {.cfg = &cfg};
    struct slh_web_answer ans;
    char text[512], cookie[128] = "", form[128];
    FILE *f;

    snprintf(text, sizeof(text), "%s/token", tmpdir);
    f = fopen(text, "w");
    if (!CHECK(f != NULL, "token file"))
        return;
    fprintf(f, "%s\n", token);
    fclose(f);
    snprintf(text, sizeof(text), "[admin]\ntoken_file = %s/token\n", tmpdir);
    if (!load(&cfg, text))
        return;
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 401 &&
              head_has(&ans, "WWW-Authenticate: Bearer realm=\"slhook\""),
          "metrics without the token: 401");
    slh_web_answer_free(&ans);
    req.authorization = "Bearer tok-0123456789abcdef";
    CHECK(status_of(&cfg, &req) == 200, "with the bearer token: 200");
    req.authorization = "Bearer tok-0123456789abcdeX";
    CHECK(status_of(&cfg, &req) == 401, "another token: 401");
    req = get("/");
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 401 &&
              has(&ans, "<form method=\"post\" action=\"/s/login\">"),
          "the page without it: the login form");
    slh_web_answer_free(&ans);
    req = get("/assets/page.css");
    CHECK(status_of(&cfg, &req) != 401, "assets need no token (the form's)");
    req = get("/login");
    req.method = "POST";
    req.body = "token=wrong-token-0000000";
    req.body_len = strlen(req.body);
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 401 && ans.set_cookie[0][0] == '\0' &&
              !has(&ans, token),
          "a wrong token: the form again, no cookie");
    slh_web_answer_free(&ans);
    snprintf(form, sizeof(form), "x=1&token=%s", token);
    req.body = form;
    req.body_len = strlen(form);
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 303 && strcmp(ans.location, "/s/") == 0 &&
              login_cookie(&ans, cookie, sizeof(cookie)) &&
              strstr(cookie, token) == NULL &&
              strstr(ans.set_cookie[0], "HttpOnly; SameSite=Strict") != NULL,
          "the right token: a cookie (not the token itself), to the page");
    slh_web_answer_free(&ans);
    req = get("/metrics");
    req.cookie = cookie;
    CHECK(status_of(&cfg, &req) == 200, "with the login cookie: 200");
    cookie[strlen(cookie) - 1] ^= 1;
    CHECK(status_of(&cfg, &req) == 401, "a changed cookie: 401");
    slh_config_free(&cfg);
}

/* The session's CSRF token, as /api/session tells the page. */
static bool
csrf_of(const struct slh_config *cfg, const char *cookie, char *out)
{
    struct slh_web_request req = get("/api/session");
    struct slh_web_env env = {.cfg = cfg};
    struct slh_web_answer ans;
    const char *at;
    bool ok = false;

    req.cookie = cookie;
    slh_web_handle(&env, &req, &ans);
    at = ans.status == 200 ? strstr(ans.body, "\"csrf\":") : NULL;
    if (at != NULL && (at = strchr(at + 7, '"')) != NULL &&
        strspn(at + 1, "0123456789abcdef") == 64) {
        memcpy(out, at + 1, 64);
        out[64] = '\0';
        ok = ans.set_cookie[1][0] == '\0';
    }
    slh_web_answer_free(&ans);
    return ok;
}

static void
test_csrf(void)
{
    static const char session[] =
        "slhook_session=0123456789abcdef0123456789abcdef";
    struct slh_config cfg, off;
    struct slh_web_request req = get("/actions/retry");
    struct slh_web_env env = {.cfg = &cfg};
    struct slh_web_answer ans;
    char csrf[65], form[256], other[65];

    if (!load(&cfg, "[admin]\nactions = yes\n") || !load(&off, "[admin]\n"))
        return;
    CHECK(csrf_of(&cfg, session, csrf), "the session's token");
    CHECK(csrf_of(&cfg, "slhook_session=ffffffffffffffffffffffffffffffff",
                  other) &&
              strcmp(csrf, other) != 0,
          "another session, another token");
    req.method = "POST";
    req.cookie = session;
    snprintf(form, sizeof(form), "dest=nowhere&csrf=%s", csrf);
    req.body = form;
    req.body_len = strlen(form);
    slh_web_handle(&(struct slh_web_env){.cfg = &off}, &req, &ans);
    CHECK(ans.status == 403 && has(&ans, "actions are off"),
          "actions = no: 403");
    slh_web_answer_free(&ans);
    CHECK(status_of(&cfg, &req) != 403, "the right token passes");
    req.cookie = "slhook_session=ffffffffffffffffffffffffffffffff";
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 403 && has(&ans, "CSRF"),
          "another session's cookie: 403");
    slh_web_answer_free(&ans);
    req.cookie = NULL;
    CHECK(status_of(&cfg, &req) == 403, "no session: 403");
    req.cookie = session;
    req.body = "dest=nowhere";
    req.body_len = strlen(req.body);
    CHECK(status_of(&cfg, &req) == 403, "no csrf field: 403");
    req.method = "GET";
    CHECK(status_of(&cfg, &req) == 404, "GET of an action: 404");
    slh_config_free(&cfg);
    slh_config_free(&off);
}

static void
test_health(void)
{
    struct slh_config cfg;
    struct slh_web_request req = get("/health");
    struct slh_web_env env = {.cfg = &cfg};
    struct slh_web_answer ans;
    struct slh_error err = {0};
    struct slh_store *sp = NULL;

    if (!load(&cfg, ""))
        return;
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 200 && has(&ans, "no spool yet"),
          "no spool yet, its directory can be made: %d", ans.status);
    slh_web_answer_free(&ans);
    if (CHECK(slh_store_open(&sp, cfg.spool, SLH_STORE_CREATE, &err) == SLH_OK,
              "store: %s", err.text))
        slh_store_close(sp);
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 200 && ans.len == 3 && memcmp(ans.body, "ok\n", 3) == 0,
          "a spool: ok");
    slh_web_answer_free(&ans);
    free(cfg.spool);
    cfg.spool = strdup("/nonexistent-slh/dir/spool");
    slh_web_handle(&env, &req, &ans);
    CHECK(ans.status == 503 && ans.retry_after > 0 &&
              has(&ans, "/nonexistent-slh/dir"),
          "nowhere to make one: 503 with the reason");
    slh_web_answer_free(&ans);
    slh_config_free(&cfg);
}

static void
test_form_and_head(void)
{
    static const char q[] = "a=1&b=x%20y+z&c=%zz&long=0123456789";
    char v[8];
    struct slh_web_answer ans = {0};
    struct slh_web_request req = get("/x\ty\001");
    char head[64], line[256];

    CHECK(slh_web_form_value(q, strlen(q), "b", v, sizeof(v)) &&
              strcmp(v, "x y z") == 0,
          "decoded: '%s'", v);
    CHECK(!slh_web_form_value(q, strlen(q), "c", v, sizeof(v)),
          "a bad escape: none");
    CHECK(!slh_web_form_value(q, strlen(q), "d", v, sizeof(v)) &&
              !slh_web_form_value(q, strlen(q), "long", v, sizeof(v)) &&
              !slh_web_form_value(q, 3, "b", v, sizeof(v)),
          "absent, too long, or past len: none");
    slh_web_answer_text(&ans, 404, "text/plain", "not found\n");
    CHECK(slh_web_format_head(&ans, head, sizeof(head)) == 0,
          "a head that does not fit: 0");
    slh_web_logline(&req, &ans, 1.5, line, sizeof(line));
    CHECK(strcmp(line, "slhook: 404 GET /x?y? 1.50ms from 127.0.0.1 "
                       "(not found)") == 0,
          "log line, path made printable: %s", line);
    req.path = "/health";
    slh_web_answer_text(&ans, 200, "text/plain", "ok\n");
    slh_web_logline(&req, &ans, 1.5, line, sizeof(line));
    CHECK(line[0] == '\0', "a healthy probe is not logged");
    slh_web_answer_free(&ans);
}

int
main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        CHECK(0, "mkdtemp failed");
        return check_summary();
    }
    (void)check_slurp;
    (void)check_fixtures;
    test_wants();
    test_no_admin();
    test_allow_from();
    test_page_headers();
    test_token();
    test_csrf();
    test_health();
    test_form_and_head();
    {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_summary();
}
