/* Trusted proxies and X-Forwarded-For; see include/pd/proxies.h.  Pure. */
#include "pd/proxies.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Reads an IPv4 or IPv6 address of n bytes of text; false when it is none. */
static bool parse_address(const char *text, size_t n, int *family, unsigned char addr[16])
{
    char buf[PD_ADDRESS_MAX];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

static int parse_cidr(const char *text, size_t n, pd_cidr_t *out, pd_error_t *err)
{
    const char *slash = memchr(text, '/', n);
    size_t addr_len = slash != NULL ? (size_t)(slash - text) : n;
    if (!parse_address(text, addr_len, &out->family, out->addr))
        return pd_error_set(err, PD_EINVAL, 0, "", "'%.*s' is not an IP address or CIDR", (int)n,
                            text);
    int max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash != NULL) {
        char digits[8];
        size_t d = n - addr_len - 1;
        char *end;
        if (d == 0 || d >= sizeof(digits))
            goto bad_prefix;
        memcpy(digits, slash + 1, d);
        digits[d] = '\0';
        long v = strtol(digits, &end, 10);
        if (*end != '\0' || v < 0 || v > max)
            goto bad_prefix;
        out->prefix = (int)v;
    }
    return PD_OK;
bad_prefix:
    return pd_error_set(err, PD_EINVAL, 0, "", "'%.*s': the prefix length must be 0 to %d", (int)n,
                        text, max);
}

int pd_proxies_parse(const char *text, pd_proxies_t *out, pd_error_t *err)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = text; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (out->n == PD_PROXIES_MAX)
            return pd_error_set(err, PD_EINVAL, 0, "", "at most %d CIDRs", PD_PROXIES_MAX);
        int rc = parse_cidr(p, n, &out->cidrs[out->n], err);
        if (rc < 0)
            return rc;
        out->n++;
        p += n + (comma != NULL);
        if (comma != NULL && *p == '\0')
            return pd_error_set(err, PD_EINVAL, 0, "", "a CIDR is missing after the last comma");
    }
    return PD_OK;
}

static bool in_cidr(const pd_cidr_t *c, int family, const unsigned char addr[16])
{
    if (c->family != family)
        return false;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

/* An IPv4 address mapped into IPv6 (::ffff:a.b.c.d) as IPv4. */
static void unmap(int *family, unsigned char addr[16])
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (*family == AF_INET6 && memcmp(addr, prefix, sizeof(prefix)) == 0) {
        memmove(addr, addr + 12, 4);
        *family = AF_INET;
    }
}

static bool trusts(const pd_proxies_t *list, const char *text, size_t n)
{
    int family;
    unsigned char addr[16];
    if (list == NULL || list->n == 0 || !parse_address(text, n, &family, addr))
        return false;
    unmap(&family, addr);
    for (size_t i = 0; i < list->n; i++) {
        if (in_cidr(&list->cidrs[i], family, addr))
            return true;
    }
    return false;
}

bool pd_proxies_trusts(const pd_proxies_t *list, const char *address)
{
    return trusts(list, address, strlen(address));
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

void pd_proxies_client(const pd_proxies_t *list, const char *peer, const char *xff, char *out,
                       size_t size)
{
    snprintf(out, size, "%s", peer);
    if (xff == NULL || !pd_proxies_trusts(list, peer))
        return;
    /* From the right: each element was appended by the hop that received it. */
    size_t end = strlen(xff);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && is_space(xff[a]))
            a++;
        while (b > a && is_space(xff[b - 1]))
            b--;
        int family;
        unsigned char addr[16];
        if (!parse_address(xff + a, b - a, &family, addr))
            return; /* not an address: trust nothing left of it; the last good one stays */
        snprintf(out, size, "%.*s", (int)(b - a), xff + a);
        if (!trusts(list, xff + a, b - a))
            return;
        end = start > 0 ? start - 1 : 0;
    }
}
