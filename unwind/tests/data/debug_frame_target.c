/* A program built with .debug_frame instead of .eh_frame (-fno-asynchronous-unwind-tables) by unwind/tests/readelf_reference.rs. */
#include <stdio.h>
__attribute__((noinline)) int leaf(int x) { volatile int a[64]; a[x & 63] = x; return a[(x + 1) & 63] + x; }
__attribute__((noinline)) int middle(int x) { return leaf(x) * 3 + leaf(x + 1); }
int main(int argc, char **argv) { printf("%d\n", middle(argc)); return 0; }
