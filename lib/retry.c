#include "retry.h"

#include <string.h>
#include <strings.h>

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool
slh_retry_is_abort_header(const char *line, size_t len)
{
    static const char name[] = "webhook-delivery:";
    static const char value[] = "abort";
    size_t n = sizeof(name) - 1, v = sizeof(value) - 1;

    if (line == NULL || len < n || strncasecmp(line, name, n) != 0)
        return false;
    line += n;
    len -= n;
    while (len > 0 && is_blank(line[0])) {
        line++;
        len--;
    }
    while (len > 0 && is_blank(line[len - 1]))
        len--;
    return len == v && strncasecmp(line, value, v) == 0;
}

int64_t
slh_retry_backoff(int attempts, uint32_t rnd)
{
    int64_t wait = SLH_BACKOFF_FIRST_MS;

    for (int i = 1; i < attempts && wait < SLH_BACKOFF_CAP_MS; i++)
        wait *= 2;
    if (wait > SLH_BACKOFF_CAP_MS)
        wait = SLH_BACKOFF_CAP_MS;
    return wait + (int64_t)(rnd % (uint32_t)(wait / 4 + 1));
}

void
slh_retry_decide(struct slh_outcome *o, const struct slh_claim *c,
                 int64_t max_age, int status, bool is_abort,
                 int64_t retry_after_ms, int64_t now_ms, uint32_t rnd)
{
    int64_t start = c->revived > c->received ? c->revived : c->received;
    int64_t horizon = INT64_MAX;
    int64_t wait;

    if (max_age < (INT64_MAX - start) / 1000)
        horizon = start + max_age * 1000;

    o->seq = c->seq;
    memcpy(o->id, c->id, sizeof(o->id));
    o->status = status;
    o->due = now_ms;
    if (is_abort) {
        o->state = SLH_DEAD;
        return;
    }
    if (status >= 200 && status <= 299) {
        o->state = SLH_DELIVERED;
        return;
    }
    if (status == 410 || now_ms >= horizon) {
        o->state = SLH_DEAD;
        return;
    }
    o->state = SLH_PENDING;
    wait = slh_retry_backoff(c->attempts, rnd);
    if (retry_after_ms > wait)
        wait = retry_after_ms;
    o->due = wait < horizon - now_ms ? now_ms + wait : horizon;
}
