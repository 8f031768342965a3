/* A 30-function-deep call chain ending in getppid(), for bench/ustack_unwind.sh: each sampled
 * user stack is deep_1 ... deep_30 (innermost last called), libc's getppid, main and libc's start.
 *
 * Usage: deep CALLS. It waits for a line on stdin (the tracer is attached by then), makes CALLS
 * getppid() calls from the bottom of the chain, prints "done", and exits at end of stdin, so the
 * tracer can read its statistics and print its stacks while the process is still alive. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile long sink;

/* The innermost function makes the calls; every other one calls the next and uses the result
 * after the call, so neither inlining nor a tail call can fold frames away. */
__attribute__((noinline, noipa)) long deep_30(long calls) {
    long sum = 0;
    for (long i = 0; i < calls; i++)
        sum += getppid();
    return sum;
}

#define LINK(n, next)                                                   \
    __attribute__((noinline, noipa)) long deep_##n(long calls) {       \
        long r = deep_##next(calls);                                   \
        sink += r;                                                     \
        return r + n;                                                  \
    }

LINK(29, 30) LINK(28, 29) LINK(27, 28) LINK(26, 27) LINK(25, 26) LINK(24, 25) LINK(23, 24)
LINK(22, 23) LINK(21, 22) LINK(20, 21) LINK(19, 20) LINK(18, 19) LINK(17, 18) LINK(16, 17)
LINK(15, 16) LINK(14, 15) LINK(13, 14) LINK(12, 13) LINK(11, 12) LINK(10, 11) LINK(9, 10)
LINK(8, 9) LINK(7, 8) LINK(6, 7) LINK(5, 6) LINK(4, 5) LINK(3, 4) LINK(2, 3) LINK(1, 2)

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 100000;
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    sink += deep_1(calls);
    printf("done\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
