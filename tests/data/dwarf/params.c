/* Functions whose parameters cover the ways bpftrace 0.17 writes DWARF types in
 * `-lv uprobe:BIN:FUNC` (base types, typedefs, pointers, const before and after, records,
 * enums, what it calls `<unknown type>`), for tests/tests/usdt_specs.rs. Built with `gcc -g`. */
#include <stddef.h>
typedef unsigned long ulong_t;
struct S { int a; }; union U { int x; float f; }; enum E { A, B };
typedef struct { int q; } anon_t;
int f1(const char *s, char *const p, const char *const *pp, volatile int v, int arr[4], void *vp, ulong_t u, size_t z) { return 0; }
int f2(struct S s, union U u, enum E e, anon_t a, struct S *ps, int (*fn)(int), double d, const struct S *cps) { return 0; }
static int f3(void) { return 1; }
int main(int argc, char **argv) { return f3(); }
