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

time_t http_date_parse(const char *s)
{
    struct tm tm = {0};
    int i;

    /* IMF-fixdate only: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7
     * lets a recipient ignore the obsolete forms in conditionals). */
    if (strlen(s) != 29)
        return -1;
    if (s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[19] != ':' || s[22] != ':' || s[25] != ' ' || strcmp(s + 26, "GMT") != 0)
        return -1;
    for (i = 0; i < 12 && memcmp(s + 8, month[i], 3) != 0; i++)
        ;
    if (i == 12)
        return -1;
    tm.tm_mon = i;
    if (sscanf(s + 5, "%2d", &tm.tm_mday) != 1 || sscanf(s + 12, "%4d", &tm.tm_year) != 1 ||
        sscanf(s + 17, "%2d:%2d:%2d", &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 3)
        return -1;
    tm.tm_year -= 1900;
    return timegm(&tm);
}
