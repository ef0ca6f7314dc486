#include "net.h"

#include <arpa/inet.h>
#include <string.h>

/* Room for the longest IPv6 text, including a dotted IPv4 tail. */
#define ADDR_TEXT_MAX 64

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                                   0, 0, 0, 0, 0xff, 0xff};

/*
 * Parses one address, either family, into the 16-byte form; *max_prefix is
 * 32 or 128. len bytes of text are taken, so the caller need not copy.
 */
static bool
parse_addr(const char *text, size_t len, unsigned char out[16],
           unsigned *max_prefix)
{
    char buf[ADDR_TEXT_MAX];
    unsigned char v4[4];

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, v4) == 1) {
        memcpy(out, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        memcpy(out + 12, v4, sizeof(v4));
        *max_prefix = 32;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *max_prefix = 128;
        return true;
    }
    return false;
}

/* True when the first prefix bits of a and b agree. */
static bool
same_prefix(const unsigned char a[16], const unsigned char b[16],
            unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    unsigned char mask;

    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    mask = (unsigned char)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* Writes the block's address in its own family, for messages. */
static void
format_network(const unsigned char addr[16], bool is_v4, char *buf, size_t size)
{
    if (is_v4)
        inet_ntop(AF_INET, addr + 12, buf, (socklen_t)size);
    else
        inet_ntop(AF_INET6, addr, buf, (socklen_t)size);
}

enum slh_err
slh_cidr_parse(struct slh_cidr *out, const char *text, struct slh_error *err)
{
    struct slh_cidr c;
    const char *slash, *p;
    size_t addr_len;
    unsigned max_prefix, prefix, i;
    char net[ADDR_TEXT_MAX];

    if (text == NULL)
        return slh_error_set(err, SLH_EINVAL, "no address block");
    slash = strchr(text, '/');
    addr_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (!parse_addr(text, addr_len, c.addr, &max_prefix))
        return slh_error_set(err, SLH_EINVAL, "'%s' is not an IP address",
                             text);
    prefix = max_prefix;
    if (slash != NULL) {
        p = slash + 1;
        /* Three digits at most: enough for 128, and no overflow. */
        if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 3)
            return slh_error_set(err, SLH_EINVAL,
                                 "'%s' has a bad prefix length", text);
        prefix = 0;
        for (; *p != '\0'; p++)
            prefix = prefix * 10 + (unsigned)(*p - '0');
        if (prefix > max_prefix)
            return slh_error_set(err, SLH_EINVAL, "'%s': prefix length over %u",
                                 text, max_prefix);
    }
    if (max_prefix == 32)
        prefix += 96;
    c.prefix = prefix;

    /* Host bits set are almost always a typo in the network part, so they
     * are refused rather than masked away. */
    for (i = prefix; i < 128; i++) {
        if (c.addr[i / 8] & (0x80u >> (i % 8))) {
            for (; i < 128; i++)
                c.addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
            format_network(c.addr, max_prefix == 32, net, sizeof(net));
            return slh_error_set(
                err, SLH_EINVAL, "'%s' has host bits set (network is %s/%u)",
                text, net, max_prefix == 32 ? prefix - 96 : prefix);
        }
    }
    *out = c;
    return SLH_OK;
}

bool
slh_cidr_match(const struct slh_cidr *blocks, size_t n, const char *addr)
{
    unsigned char a[16];
    unsigned max_prefix;
    size_t len, i;

    if (blocks == NULL || addr == NULL)
        return false;
    /* A link-local REMOTE_ADDR may carry its zone ("fe80::1%eth0"); the
     * zone names an interface, not part of the address. */
    len = strcspn(addr, "%");
    if (addr[len] == '%' && memchr(addr, ':', len) == NULL)
        return false;
    if (!parse_addr(addr, len, a, &max_prefix))
        return false;
    for (i = 0; i < n; i++) {
        if (blocks[i].prefix <= 128 &&
            same_prefix(a, blocks[i].addr, blocks[i].prefix))
            return true;
    }
    return false;
}
