/* page.h: the operator's page (web.h): one HTML document, its styles and
 * scripts (ours, and uPlot's from npm), embedded in the binary, and the
 * JSON it reads. Access (allow_from, the token, the CSRF token of a form)
 * is decided by web.c before any of these is called.
 */
#ifndef SLH_PAGE_H
#define SLH_PAGE_H

#include <stdbool.h>

#include "config.h"
#include "web.h"

struct slh_store;

/* The page ("/" and "/events/ID") and its assets ("/assets/NAME"): true
 * when path is one of them, with *ans the bytes (gzip'd when gzip_ok and
 * smaller so). */
bool slh_page_static(const char *path, bool gzip_ok,
                     struct slh_web_answer *ans);

/* GET "/api/NAME": the JSON the page reads, from sp (NULL: no spool yet).
 * csrf is the session's token, for the page's forms. False when path is no
 * such thing (web.c answers 404). */
bool slh_page_api(const struct slh_config *cfg, struct slh_store *sp,
                  const struct slh_web_request *req, const char *path,
                  const char *csrf, struct slh_web_answer *ans);

/* POST "/actions/NAME" (retry, replay), its CSRF token already checked and
 * actions allowed: does it and answers JSON. False when path is no such
 * thing. */
bool slh_page_action(const struct slh_config *cfg, struct slh_store *sp,
                     const struct slh_web_request *req, const char *path,
                     struct slh_web_answer *ans);

#endif
