// Writes libstdcxx_sort.expected: how libstdc++ orders equal keys. Each line is
// `MODE COUNT RANGE SEED: INDEXES`, the input indexes in the order std::sort (MODE `sort`) or
// std::partial_sort over the whole range, i.e. heapsort (MODE `heap`), leaves them. The inputs
// come from the 64-bit LCG that libstdcxx_sort.rs's tests use.
//
//   g++ -O2 -o /tmp/libstdcxx_sort libstdcxx_sort.cc && /tmp/libstdcxx_sort > libstdcxx_sort.expected
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

struct Item {
    uint64_t key;
    size_t index;
    bool operator<(const Item &other) const { return key < other.key; }
};

static std::vector<Item> input(size_t count, uint64_t range, uint64_t seed) {
    std::vector<Item> items;
    uint64_t state = seed;
    for (size_t i = 0; i < count; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        items.push_back({(state >> 33) % range, i});
    }
    return items;
}

int main() {
    struct Case { const char *mode; size_t count; uint64_t range, seed; };
    const Case cases[] = {
        {"sort", 10, 2, 1},    {"sort", 17, 3, 2},    {"sort", 40, 3, 3},
        {"sort", 100, 5, 4},   {"sort", 300, 7, 5},   {"sort", 1000, 20, 6},
        {"sort", 2000, 2, 7},  {"sort", 1500, 1000, 8},
        {"heap", 10, 3, 9},    {"heap", 33, 4, 10},   {"heap", 500, 9, 11},
    };
    for (const Case &c : cases) {
        std::vector<Item> items = input(c.count, c.range, c.seed);
        if (strcmp(c.mode, "sort") == 0)
            std::sort(items.begin(), items.end());
        else
            std::partial_sort(items.begin(), items.end(), items.end());
        printf("%s %zu %llu %llu:", c.mode, c.count, (unsigned long long)c.range, (unsigned long long)c.seed);
        for (const Item &item : items)
            printf(" %zu", item.index);
        printf("\n");
    }
}
