/* cgi.h: what differs between the two CGI programs built from cgi/main.c.
 *
 * slhook.cgi is linked fully static, for its start-up time, and so without
 * libpq (Debian ships no static Kerberos or OpenLDAP library for a static
 * libpq to need: Makefile). It carries the slhook tool and starts it to
 * deliver (static.c). slhook-pg.cgi, linked dynamically with libpq, is
 * what slhook.cgi runs in its place for a PostgreSQL spool (pg.c); it is
 * installed beside it.
 */
#ifndef SLH_CGI_H
#define SLH_CGI_H

#include "config.h"

#define SLH_CGI_PG "slhook-pg.cgi" /* the sibling's name, beside slhook.cgi */

/*
 * When cfg's spool is one this program cannot open, runs the program that
 * can in this process's place (execve(): argv, the environment and stdin
 * as they are, nothing read from stdin yet), and does not return. Returns
 * when this program opens such a spool itself, or when the other cannot
 * be run: then it has said why on stderr, and the store's refusal answers
 * the request (503 with Retry-After).
 */
void cgi_handoff(const struct slh_config *cfg, char **argv);

/*
 * After a request that queued work: starts a deliverer for cfg's spool
 * unless one is running (kick.h). Whatever keeps it from starting goes to
 * stderr.
 */
void cgi_kick(const struct slh_config *cfg);

#endif
