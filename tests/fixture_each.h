/* fixture_each.h: every SocketLabs fixture request, for the test programs
 * that store them all (test_queue, test_deliver). Include after check.h. */
#ifndef SLH_TEST_FIXTURE_EACH_H
#define SLH_TEST_FIXTURE_EACH_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "event.h"

/* Calls each(name, body, len, media, arg) for every request in
 * fixtures/socketlabs: the *.json files as JSON, the legacy-form-* files as
 * forms. The body is NUL-terminated and borrowed for the call. A directory
 * or file that cannot be read is a failed check. */
__attribute__((unused)) static void
fixture_each(void (*each)(const char *name, const char *body, size_t len,
                          enum slh_media media, void *arg),
             void *arg)
{
    char path[512];
    struct dirent *de;
    DIR *dd;

    snprintf(path, sizeof(path), "%s/socketlabs", check_fixtures());
    dd = opendir(path);
    if (!CHECK(dd != NULL, "open %s", path))
        return;
    while ((de = readdir(dd)) != NULL) {
        enum slh_media media;
        size_t len = 0;
        char *body;

        if (strstr(de->d_name, ".json") != NULL)
            media = SLH_MEDIA_JSON;
        else if (strncmp(de->d_name, "legacy-form", 11) == 0)
            media = SLH_MEDIA_FORM;
        else
            continue;
        snprintf(path, sizeof(path), "%s/socketlabs/%s", check_fixtures(),
                 de->d_name);
        body = check_slurp(path, &len);
        if (CHECK(body != NULL, "read %s", path))
            each(de->d_name, body, len, media, arg);
        free(body);
    }
    closedir(dd);
}

#endif
