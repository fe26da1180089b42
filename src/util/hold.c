/*
 * The test-only pause point; see include/pd/hold.h.  Any thread.
 *
 * The environment is read once.  A held writer polls for its release file
 * every 10 ms: the hold exists for tests, where that wait is the test's to
 * end, and a production process (no PATTERND_HOLD_DIR) pays one atomic
 * load per batch.
 */
#include "pd/hold.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *dir;     /* NULL: off */
static const char *batches; /* "all", or a comma-separated list of batch numbers */
static atomic_long counter; /* batches seen by the process */

static void read_environment(void)
{
    const char *d = getenv("PATTERND_HOLD_DIR");
    const char *b = getenv("PATTERND_HOLD_BATCHES");
    if (d != NULL && d[0] != '\0' && b != NULL && b[0] != '\0') {
        dir = d;
        batches = b;
    }
}

/* True when batch n is in the list. */
static bool listed(long n)
{
    if (strcmp(batches, "all") == 0)
        return true;
    for (const char *p = batches; *p != '\0';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return false;
        if (v == n)
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

void pd_hold_batch(void)
{
    pthread_once(&once, read_environment);
    if (dir == NULL)
        return;
    long n = atomic_fetch_add(&counter, 1) + 1;
    if (!listed(n))
        return;
    char held[4096], release[4096];
    snprintf(held, sizeof(held), "%s/held-%ld", dir, n);
    snprintf(release, sizeof(release), "%s/release-%ld", dir, n);
    FILE *f = fopen(held, "w");
    if (f == NULL)
        return; /* nobody can release it: do not hold */
    fclose(f);
    const struct timespec poll = {.tv_nsec = 10 * 1000 * 1000};
    while (access(release, F_OK) != 0)
        nanosleep(&poll, NULL);
    unlink(release);
    unlink(held);
}
