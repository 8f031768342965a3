/* A daemon's timer loop, as corosync's timer_function_scheduler_timeout: each tick measures
 * how long since the last one (tv_diff, in ns) and logs the late ones. Every LATE_EVERY-th tick
 * first fsyncs a file with dirty pages, which waits in D state, so that tick comes late.
 * `ticks N INTERVAL_MS LATE_EVERY THRESHOLD_MS DIR`; prints the late ticks it saw.
 * Built -O0 -g and -O2 -g by tests/source_lines.rs. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char dirty[1 << 20];

__attribute__((noinline)) static void stall(int fd) {
    memset(dirty, 'x', sizeof dirty);
    for (int i = 0; i < 8; i++) {
        if (write(fd, dirty, sizeof dirty) < 0)
            return;
    }
    fsync(fd);
}

__attribute__((noinline)) static int scheduler_timeout(uint64_t *last, uint64_t threshold_ns) {
    uint64_t now = now_ns();
    uint64_t tv_diff = now - *last;
    int late = tv_diff > threshold_ns;
    if (late)
        printf("late tick: %llu ms\n", (unsigned long long)(tv_diff / 1000000));
    *last = now;
    return late;
}

int main(int argc, char **argv) {
    int ticks = argc > 1 ? atoi(argv[1]) : 10;
    int interval_ms = argc > 2 ? atoi(argv[2]) : 100;
    int late_every = argc > 3 ? atoi(argv[3]) : 0;
    uint64_t threshold_ns = (uint64_t)(argc > 4 ? atoi(argv[4]) : 150) * 1000000u;
    char path[4096];
    snprintf(path, sizeof path, "%s/dirty", argc > 5 ? argv[5] : "/tmp");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    struct timespec nap = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
    uint64_t last = now_ns();
    int late = 0;
    for (int tick = 1; tick <= ticks; tick++) {
        if (late_every > 0 && tick % late_every == 0)
            stall(fd);
        nanosleep(&nap, NULL);
        late += scheduler_timeout(&last, threshold_ns);
    }
    printf("%d late ticks of %d\n", late, ticks);
    close(fd);
    unlink(path);
    return 0;
}
