// The C++ target of tests/tests/uprobes.rs, compiled with g++ at test time: overloaded member
// functions and a free function in a namespace, so uprobes can name them by their demangled
// names (`rbt::Counter::add(int)`) and wildcards over those. `counter N` makes, for i in 0..N,
// one call of add(int), add(long) and twice(int), and one more add(int) with twice's result:
// add(int) 2N times, add(long) and twice N times each.
#include <cstdlib>

namespace rbt {
struct Counter {
    long total = 0;
    __attribute__((noinline)) void add(int n) { total += n; asm volatile(""); }
    __attribute__((noinline)) void add(long n) { total += n; asm volatile(""); }
};
__attribute__((noinline)) int twice(int x) { asm volatile(""); return 2 * x; }
}  // namespace rbt

int main(int argc, char **argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 3;
    rbt::Counter counter;
    for (int i = 0; i < n; i++) {
        counter.add(i);
        counter.add(static_cast<long>(i));
        counter.add(rbt::twice(i));
    }
    return static_cast<int>(counter.total & 1);
}
