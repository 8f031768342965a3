/* A program with USDT probes whose arguments are known, for tests/tests/usdt.rs.
 *
 * usage: usdt_target ROUNDS [PAUSE_MS]
 * Each round fires rbt:add(i, -i, (i << 40) + 7, 5, total) and rbt:tick(i); the probe
 * rbt:frame(i + 100, 100) from an unoptimized function; rbt:guarded(i) fires only while a tracer holds its semaphore. After the rounds the program
 * prints how often rbt:guarded fired and exits. With PAUSE_MS it sleeps that long before the rounds (so a tracer
 * attached by `-p` or `-c` is in place) and between them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* Every probe gets a semaphore (`PROVIDER_NAME_semaphore`), which the kernel increments while
 * a uprobe is attached; only rbt:guarded is skipped while its semaphore is zero. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#define SEMAPHORE(name) \
    unsigned short rbt_##name##_semaphore __attribute__((unused)) __attribute__((section(".probes")))
SEMAPHORE(add);
SEMAPHORE(tick);
SEMAPHORE(guarded);
SEMAPHORE(frame);

static void pause_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* `volatile` keeps the running total in memory, so one argument is a memory operand. */
static volatile long total;

/* Unoptimized, so the arguments are on the stack: `-8@-24(%rbp)`. */
__attribute__((noinline, optimize("O0"))) static void frame(long a, long b) {
    long sum = a + b;
    DTRACE_PROBE2(rbt, frame, sum, b);
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 10;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    long guarded = 0;
    if (pause > 0) pause_ms(pause);
    for (long i = 1; i <= rounds; i++) {
        int small = (int)i;
        int negative = -(int)i;
        long long wide = (i << 40) + 7;
        total += i;
        DTRACE_PROBE5(rbt, add, small, negative, wide, 5, total);
        DTRACE_PROBE1(rbt, tick, i);
        if (__builtin_expect(rbt_guarded_semaphore, 0)) {
            DTRACE_PROBE1(rbt, guarded, i);
            guarded++;
        }
        frame(i, 100);
        if (pause > 0) pause_ms(pause / 10 + 1);
    }
    printf("done: rbt:guarded fired %ld times\n", guarded);
    return 0;
}
