/*
 * Trusted proxies: which peers may say, in X-Forwarded-For, whom they
 * forward for (`patternd serve --trusted-proxies CIDR[,CIDR...]`).
 *
 * A request's client is its peer, unless the peer is a trusted proxy: then
 * it is the last address of X-Forwarded-For that is not itself a trusted
 * proxy, read from the right (each proxy appends the address it received
 * from); the first address when every one is trusted; and the peer when
 * the header is absent or its last element is not an address.  An address
 * that a client wrote itself sits left of what a trusted proxy appended,
 * so it is never taken; and the header of a peer that is not trusted is
 * ignored, so a forged one neither splits nor dodges a per-client limit.
 *
 * Pure functions; a pd_proxies_t is immutable once parsed and may be read
 * by any thread.
 */
#ifndef PD_PROXIES_H
#define PD_PROXIES_H

#include <stdbool.h>
#include <stddef.h>

#include "pd/error.h"

#define PD_PROXIES_MAX 64 /* CIDRs in one list */
#define PD_ADDRESS_MAX 64 /* an address as text, with its NUL */

typedef struct pd_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; 4 bytes for IPv4 */
    int prefix;             /* bits */
} pd_cidr_t;

typedef struct pd_proxies {
    pd_cidr_t cidrs[PD_PROXIES_MAX];
    size_t n;
} pd_proxies_t;

/*
 * Parses "CIDR[,CIDR...]" (e.g. "10.0.0.0/8,::1/128"; an address alone is
 * a /32 or /128) into out.  "" gives an empty list.  Returns 0, or
 * PD_EINVAL with what is wrong in err.
 */
int pd_proxies_parse(const char *text, pd_proxies_t *out, pd_error_t *err);

/* True when address (text, IPv4 or IPv6) is in one of the list's CIDRs; list may be NULL (empty).
 */
bool pd_proxies_trusts(const pd_proxies_t *list, const char *address);

/*
 * The client of a request from peer whose X-Forwarded-For header is xff
 * (NULL when absent), as the top of this file says, into out (size bytes).
 * list may be NULL (empty): then the client is the peer.
 */
void pd_proxies_client(const pd_proxies_t *list, const char *peer, const char *xff, char *out,
                       size_t size);

#endif
