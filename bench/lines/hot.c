/* A hot function for bench/line_locals.sh: `hot N` calls step() N times and prints the loop's
 * ns per call (CLOCK_MONOTONIC), so the cost of a probe on step shows as the rise over no probe. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) long step(long x, long y) {
    long sum = x * 7 + y;
    long diff = sum - (x >> 1); /* rbt-line: hot */
    return diff ^ y;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    struct timespec a, b;
    long acc = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        acc += step(i, acc & 0xff);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    printf("%.1f ns per call (%ld)\n", ns / (double)n, acc & 1);
    return 0;
}
