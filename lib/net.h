/* net.h: IPv4 and IPv6 CIDR blocks for the source allow-list. */
#ifndef SLH_NET_H
#define SLH_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* One address block. IPv4 blocks are kept as IPv4-mapped IPv6 (::ffff:a.b.c.d,
 * prefix + 96), so that one comparison serves both families. */
struct slh_cidr {
    unsigned char addr[16]; /* network address, host bits zero */
    unsigned prefix;        /* 0..128 */
};

/*
 * Parses "a.b.c.d", "a.b.c.d/n", "x:y::z" or "x:y::z/n" into *out. A bare
 * address is a /32 or /128. Host bits set beyond the prefix are an error
 * (a typo guard: 142.0.177.0/20 is not what anyone meant). On failure *out is
 * untouched and err says why.
 */
enum slh_err slh_cidr_parse(struct slh_cidr *out, const char *text,
                            struct slh_error *err);

/*
 * True when the textual address addr (REMOTE_ADDR: IPv4, IPv6, or IPv4-mapped
 * IPv6) lies in one of the n blocks. An address that does not parse matches
 * nothing.
 */
bool slh_cidr_match(const struct slh_cidr *blocks, size_t n, const char *addr);

#endif
