/*
 * Timestamps of records (start_time, docs/spec.md §1): ISO-8601 / RFC 3339 to
 * microseconds since the Unix epoch, by hand because the C library has no
 * portable parser for it (strptime has no fractions or offsets, and
 * timegm is not standard C).  Pure: any thread may call it.
 */
#include "pd/record.h"

#include <ctype.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p; advances *p. */
static bool read_digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || !isdigit((unsigned char)**p))
            return false;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return true;
}

int pd_timestamp_parse(const char *s, size_t len, int64_t *out_us)
{
    const char *p = s, *end = s + len;
    int year, mon, day, hh = 0, mm = 0, ss = 0;
    int64_t frac_us = 0, offset_s = 0;

    if (!read_digits(&p, end, 4, &year) || p >= end || *p++ != '-' ||
        !read_digits(&p, end, 2, &mon) || p >= end || *p++ != '-' || !read_digits(&p, end, 2, &day))
        return PD_EINVAL;
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
        return PD_EINVAL;
    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
        p++;
        if (!read_digits(&p, end, 2, &hh) || p >= end || *p++ != ':' ||
            !read_digits(&p, end, 2, &mm))
            return PD_EINVAL;
        if (p < end && *p == ':') {
            p++;
            if (!read_digits(&p, end, 2, &ss))
                return PD_EINVAL;
            if (p < end && (*p == '.' || *p == ',')) {
                p++;
                int digits = 0;
                int64_t scale = 100000;
                while (p < end && isdigit((unsigned char)*p)) {
                    if (digits < 6)
                        frac_us += (*p - '0') * scale;
                    scale /= 10;
                    digits++;
                    p++;
                }
                if (digits == 0)
                    return PD_EINVAL;
            }
        }
        if (hh > 23 || mm > 59 || ss > 59)
            return PD_EINVAL;
        if (p < end && (*p == 'Z' || *p == 'z')) {
            p++;
        } else if (p < end && (*p == '+' || *p == '-')) {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!read_digits(&p, end, 2, &oh))
                return PD_EINVAL;
            if (p < end && *p == ':')
                p++;
            if (p < end && !read_digits(&p, end, 2, &om))
                return PD_EINVAL;
            if (oh > 23 || om > 59)
                return PD_EINVAL;
            offset_s = sign * (oh * 3600 + om * 60);
        }
    }
    if (p != end)
        return PD_EINVAL;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss - offset_s;
    *out_us = secs * 1000000 + frac_us;
    return PD_OK;
}
