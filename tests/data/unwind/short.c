/* A process that lives well under a millisecond: 50 allocations, then exit. Built by
 * tests/tests/unwind.rs; its stacks must still be symbolized after it is gone. */
#include <stdlib.h>

void *volatile kept[50];

int main(void) {
    for (int i = 0; i < 50; i++)
        kept[i] = malloc(100 + i);
    return 0;
}
