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

int main(void) {
    long total = 0;
    for (int k = 1; k <= 5; k++)
        total += mix(k * 1000, k + 2, "abcd");
    printf("%ld\n", total);
    return 0;
}
