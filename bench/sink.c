/* sink: the benchmark's destination, a minimal HTTP/1.1 receiver.
 *
 * One thread, epoll, keep-alive and pipelining: every request is answered
 * "200 OK" with an empty body as soon as its body is in, so the receiver is
 * never what limits a delivery benchmark (Python's http.server manages a few
 * hundred a second; this does tens of thousands).
 *
 *   sink [-p PORT] [-f PORT_FILE] [-l LOG]
 *
 * Listens on 127.0.0.1:PORT (0, the default: any free port, written to
 * PORT_FILE). With -l, appends "ARRIVAL_US MESSAGE_ID WEBHOOK_ID" per POST
 * (CLOCK_REALTIME microseconds, when its body was complete), for latency.
 * `GET /count` answers the number of POSTs received so far. SIGTERM or
 * SIGINT: flush the log and exit 0.
 */
/* Linux only, like epoll itself: memmem() and accept4() are GNU. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_REQUEST (1024 * 1024) /* head plus body */
#define READ_CHUNK 65536

struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    char *out; /* answers not yet written */
    size_t out_len, out_cap;
    bool is_continued; /* "100 Continue" already sent for this request */
};

static volatile sig_atomic_t is_stopping;
static unsigned long long n_posts;
static FILE *log_file;

static void
on_stop(int sig)
{
    (void)sig;
    is_stopping = 1;
}

static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool
append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n > *cap) {
        size_t cap2 = *cap != 0 ? *cap : 4096;
        while (cap2 < *len + n)
            cap2 *= 2;
        char *b = realloc(*buf, cap2);
        if (b == NULL)
            return false;
        *buf = b;
        *cap = cap2;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return true;
}

/* The value of header name in the head [head, end), or NULL; *n its length. */
static const char *
header(const char *head, const char *end, const char *name, size_t *n)
{
    size_t name_len = strlen(name);
    const char *p = memchr(head, '\n', (size_t)(end - head));

    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *n = (size_t)(ve - v);
            return v;
        }
        p = eol < end ? eol : NULL;
    }
    return NULL;
}

/* Copies the JSON string value of "MessageId" in body into out, or "-". */
static void
message_id(const char *body, size_t len, char *out, size_t size)
{
    static const char key[] = "\"MessageId\":\"";
    const char *p = NULL;
    size_t i = 0;

    if (len >= sizeof(key) - 1)
        p = memmem(body, len, key, sizeof(key) - 1);
    if (p != NULL) {
        const char *v = p + sizeof(key) - 1, *end = body + len;
        while (v < end && *v != '"' && i + 1 < size)
            out[i++] = *v++;
    }
    if (i == 0)
        out[i++] = '-';
    out[i] = '\0';
}

static void
log_post(const char *head, const char *head_end, const char *body,
         size_t body_len)
{
    char id[128], hook[128];
    size_t n = 0;
    const char *v = header(head, head_end, "webhook-id", &n);

    if (log_file == NULL)
        return;
    message_id(body, body_len, id, sizeof(id));
    if (v == NULL || n == 0 || n >= sizeof(hook)) {
        v = "-";
        n = 1;
    }
    memcpy(hook, v, n);
    hook[n] = '\0';
    fprintf(log_file, "%lld %s %s\n", now_us(), id, hook);
}

/*
 * Answers every complete request in c->buf. Returns false when the
 * connection is to be closed (bad request, Connection: close).
 */
static bool
handle(struct conn *c)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t used = 0;
    bool is_open = true;

    while (is_open && used < c->len) {
        char *head = c->buf + used;
        size_t avail = c->len - used, n = 0, body_len = 0;
        char *end = memmem(head, avail, "\r\n\r\n", 4);
        const char *v;

        if (end == NULL)
            break;
        end += 4;
        v = header(head, end, "Content-Length", &n);
        if (v != NULL)
            body_len = strtoul(v, NULL, 10);
        if (body_len > MAX_REQUEST)
            return false;
        if ((size_t)(end - head) + body_len > avail) {
            v = header(head, end, "Expect", &n);
            if (v != NULL && !c->is_continued) {
                if (!append(&c->out, &c->out_len, &c->out_cap, cont,
                            sizeof(cont) - 1))
                    return false;
                c->is_continued = true;
            }
            break;
        }
        c->is_continued = false;
        if (strncmp(head, "GET /count", 10) == 0) {
            char answer[128];
            int k = snprintf(answer, sizeof(answer),
                             "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                             "%llu\n",
                             snprintf(NULL, 0, "%llu\n", n_posts), n_posts);
            if (log_file != NULL)
                fflush(log_file);
            if (!append(&c->out, &c->out_len, &c->out_cap, answer, (size_t)k))
                return false;
        } else {
            if (strncmp(head, "POST ", 5) == 0) {
                n_posts++;
                log_post(head, end, end, body_len);
            }
            if (!append(&c->out, &c->out_len, &c->out_cap, ok, sizeof(ok) - 1))
                return false;
        }
        v = header(head, end, "Connection", &n);
        if (v != NULL && n == 5 && strncasecmp(v, "close", 5) == 0)
            is_open = false;
        used += (size_t)(end - head) + body_len;
    }
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    return is_open;
}

/* Writes what is pending; false on a write error. */
static bool
flush_out(struct conn *c)
{
    size_t done = 0;

    while (done < c->out_len) {
        ssize_t w = write(c->fd, c->out + done, c->out_len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0)
            return false;
        done += (size_t)w;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    return true;
}

static void
drop(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c->out);
    free(c);
}

/* Reads what is there and answers it; false when c is to be dropped. */
static bool
serve(int ep, struct conn *c)
{
    bool is_open = true, is_eof = false;
    struct epoll_event ev = {.data.ptr = c};

    for (;;) {
        if (c->cap - c->len < READ_CHUNK) {
            char *b = realloc(c->buf, c->cap + READ_CHUNK);
            if (b == NULL)
                return false;
            c->buf = b;
            c->cap += READ_CHUNK;
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0) {
            is_eof = true;
            break;
        }
        c->len += (size_t)r;
        if (c->len > MAX_REQUEST + READ_CHUNK)
            return false;
    }
    is_open = handle(c);
    if (!flush_out(c))
        return false;
    if (is_eof || (!is_open && c->out_len == 0))
        return false;
    ev.events = EPOLLIN | (c->out_len > 0 ? EPOLLOUT : 0u);
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return true;
}

static int
listen_on(int port, int *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static void
accept_all(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK), one = 1;
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
        }
    }
}

int
main(int argc, char **argv)
{
    const char *port_file = NULL, *log_path = NULL;
    struct epoll_event events[MAX_EVENTS];
    struct sigaction sa = {.sa_handler = on_stop};
    int port = 0, bound = 0, lfd, ep, opt;
    static struct conn listener;

    while ((opt = getopt(argc, argv, "p:f:l:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'l':
            log_path = optarg;
            break;
        default:
            fprintf(stderr, "usage: sink [-p PORT] [-f PORT_FILE] [-l LOG]\n");
            return 2;
        }
    }
    if (log_path != NULL && (log_file = fopen(log_path, "a")) == NULL) {
        perror(log_path);
        return 1;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = listen_on(port, &bound);
    ep = epoll_create1(0);
    if (lfd < 0 || ep < 0) {
        perror("sink: listen");
        return 1;
    }
    listener.fd = lfd;
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    if (port_file != NULL) {
        /* Written whole then renamed: a reader never sees half a number. */
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", bound) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            perror(port_file);
            return 1;
        }
    }

    while (!is_stopping) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == &listener)
                accept_all(ep, lfd);
            else if (!serve(ep, c))
                drop(ep, c);
        }
        if (log_file != NULL && n > 0)
            fflush(log_file);
    }
    if (log_file != NULL)
        fclose(log_file);
    fprintf(stderr, "sink: %llu posts\n", n_posts);
    return 0;
}
