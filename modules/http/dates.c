/* modules/http/dates.c — HTTP dates (RFC 9110 §5.6.7): Last-Modified out,
 * If-Modified-Since in. */
#include "validators.h"

#include <stdio.h>
#include <string.h>

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void http_date(time_t t, char out[30])
{
    struct tm tm;
    char s[64];

    gmtime_r(&t, &tm);
    snprintf(s, sizeof(s), "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday], tm.tm_mday,
             month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, s, 29); /* years past 9999 are not HTTP dates anyway */
    out[29] = '\0';
}

static int month_of(const char *m)
{
    int i;

    for (i = 0; i < 12 && memcmp(m, month[i], 3) != 0; i++)
        ;
    return i < 12 ? i : -1;
}

/* tm's time of day from "HH:MM:SS" at p: 0 or -1. */
static int time_of_day(const char *p, struct tm *tm)
{
    if (p[2] != ':' || p[5] != ':')
        return -1;
    return sscanf(p, "%2d:%2d:%2d", &tm->tm_hour, &tm->tm_min, &tm->tm_sec) == 3 ? 0 : -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int imf_fixdate(const char *s, struct tm *tm)
{
    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[25] != ' ' || strcmp(s + 26, "GMT") != 0 ||
        (tm->tm_mon = month_of(s + 8)) < 0 || sscanf(s + 5, "%2d", &tm->tm_mday) != 1 ||
        sscanf(s + 12, "%4d", &tm->tm_year) != 1 || time_of_day(s + 17, tm) != 0)
        return -1;
    tm->tm_year -= 1900;
    return 0;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT": a two-digit year more than 50 years
 * ahead is the last such year in the past (RFC 9110 §5.6.7). */
static int rfc850_date(const char *s, struct tm *tm)
{
    const char *c = strchr(s, ',');
    struct tm now;
    time_t t = time(NULL);
    int yy, year;

    if (c == NULL || c - s < 6 || c - s > 9 || strlen(c) != 24 || c[1] != ' ' || c[4] != '-' ||
        c[8] != '-' || c[11] != ' ' || c[20] != ' ' || strcmp(c + 21, "GMT") != 0 ||
        (tm->tm_mon = month_of(c + 5)) < 0 || sscanf(c + 2, "%2d", &tm->tm_mday) != 1 ||
        sscanf(c + 9, "%2d", &yy) != 1 || yy < 0 || time_of_day(c + 12, tm) != 0)
        return -1;
    gmtime_r(&t, &now);
    year = (now.tm_year + 1900) / 100 * 100 + yy;
    if (year > now.tm_year + 1900 + 50)
        year -= 100;
    tm->tm_year = year - 1900;
    return 0;
}

/* "Sun Nov  6 08:49:37 1994" (asctime's, the day space-padded) */
static int asctime_date(const char *s, struct tm *tm)
{
    if (strlen(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
        (tm->tm_mon = month_of(s + 4)) < 0 || sscanf(s + 8, "%2d", &tm->tm_mday) != 1 ||
        time_of_day(s + 11, tm) != 0 || sscanf(s + 20, "%4d", &tm->tm_year) != 1)
        return -1;
    tm->tm_year -= 1900;
    return 0;
}

time_t http_date_parse(const char *s)
{
    struct tm tm = {0};

    /* A recipient MUST accept all three forms (RFC 9110 §5.6.7); senders
     * use the first. */
    if (imf_fixdate(s, &tm) != 0 && rfc850_date(s, &tm) != 0 && asctime_date(s, &tm) != 0)
        return -1;
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    return timegm(&tm);
}
