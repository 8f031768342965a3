/* Locals with values that do not depend on timing, for tests/source_lines.rs to read at two
 * lines with rbt's locals.NAME and with gdb's print, built -O0 -g and -O2 -g. */
#include <stdio.h>

__attribute__((noinline)) long mix(long a, int b, const char *s) {
    long acc = a * 3;
    int n = 0;
    for (int i = 0; i < b; i++) {
        acc += s[i % 4] * (i + 1); /* rbt-line: loop */
        n += i & 1;
    }
    long result = acc ^ n; /* rbt-line: after */
    return result + b;
}

/* A struct the optimizer keeps in two registers (DW_OP_piece), one half computed from the
 * parameters; a function's static, a global and a file's static (DW_OP_addr, moved by the
 * load bias when built -pie). */
struct pair {
    long lo;
    long hi;
};
int calls_total = 0;
static long seen = 7;

__attribute__((noinline)) struct pair split(long x, int y) {
    static int calls;
    struct pair p = {x * 3, x + y};
    calls++;
    calls_total += y; /* rbt-line: split */
    seen ^= p.lo + calls;
    return p;
}

/* At -O2, after the recursive call `tag` is dead and DWARF knows it only as rsi's value on
 * entry (DW_OP_entry_value): each frame has its own. */
__attribute__((noinline)) long ext(long v) {
    __asm__ volatile("" : : "r"(v) : "memory");
    return v + 1;
}

__attribute__((noinline)) long depth(long n, long tag) {
    if (n == 0)
        return ext(tag);
    long below = depth(n - 1, tag * 2);
    long mine = ext(n); /* rbt-line: entry */
    return below + mine;
}

int main(void) {
    long total = 0;
    for (int k = 1; k <= 5; k++) {
        total += mix(k * 1000, k + 2, "abcd");
        struct pair p = split(k * 100, k);
        total += p.lo - p.hi;
        total += depth(3, k * 10);
    }
    printf("%ld %d %ld\n", total, calls_total, seen);
    return 0;
}
