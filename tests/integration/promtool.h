/* tests/integration/promtool.h — a scrape checked by Prometheus's own
 * promtool (Debian package prometheus, in make deps).  Include after
 * daemon.h; tests skip when PROMTOOL is not there. */
#ifndef TESTS_PROMTOOL_H
#define TESTS_PROMTOOL_H

#include <sys/wait.h>

#define PROMTOOL "/usr/bin/promtool"

/* promtool check metrics on body: fails the test with what it said. */
static void promtool_check(const char *body)
{
    char out[8192], cmd[1200], path[512];
    FILE *p;
    size_t got;
    int rc;

    write_file("scrape.txt", body);
    path_of(path, sizeof(path), "scrape.txt");
    snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < '%s' 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    got = fread(out, 1, sizeof(out) - 1, p);
    out[got] = '\0';
    rc = pclose(p);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0 || out[0] != '\0')
        fail_msg("promtool check metrics said (%d):\n%s\non:\n%s", rc, out, body);
}

#endif
