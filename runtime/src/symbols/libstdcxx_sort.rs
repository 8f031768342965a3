//! libstdc++'s `std::sort` (introsort: median-of-three quicksort down to runs of 16, heapsort
//! past a depth limit, then one insertion sort), reproduced step for step.
//!
//! bcc sorts kallsyms with `std::sort` by address alone, then answers an address with the last
//! symbol at or below it in that order. For aliases (several names at one address: `memset`,
//! `__memset`, `__pi_memset`) the name bpftrace prints is whichever the unstable sort happened
//! to leave last, so rbt sorts the same list the same way to print the same names. The
//! permutation is checked against g++ 12's `std::sort` in the tests below.

/// Sorts `items` by `key`, leaving equal keys in the order libstdc++'s `std::sort` leaves them.
pub fn sort_by_key<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    let less = |a: &T, b: &T| key(a) < key(b);
    if items.len() > 1 {
        let depth_limit = 2 * items.len().ilog2();
        introsort_loop(items, depth_limit, &less);
        final_insertion_sort(items, &less);
    }
}

/// Runs no longer than this are left for the final insertion sort.
const THRESHOLD: usize = 16;

fn introsort_loop<T>(items: &mut [T], mut depth_limit: u32, less: &impl Fn(&T, &T) -> bool) {
    let mut end = items.len();
    while end > THRESHOLD {
        if depth_limit == 0 {
            heap_sort(&mut items[..end], less);
            return;
        }
        depth_limit -= 1;
        let cut = partition_around_median(&mut items[..end], less);
        introsort_loop(&mut items[cut..end], depth_limit, less);
        end = cut;
    }
}

/// Moves the median of the second, middle and last items to the front as the pivot, then
/// partitions the rest around it; returns where the upper part starts.
fn partition_around_median<T>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) -> usize {
    let (a, b, c) = (1, items.len() / 2, items.len() - 1);
    let median = if less(&items[a], &items[b]) {
        if less(&items[b], &items[c]) {
            b
        } else if less(&items[a], &items[c]) {
            c
        } else {
            a
        }
    } else if less(&items[a], &items[c]) {
        a
    } else if less(&items[b], &items[c]) {
        c
    } else {
        b
    };
    items.swap(0, median);
    // Hoare partition of items[1..] around items[0]; the pivot is never moved, and the median
    // guarantees both scans stop inside the slice.
    let (mut first, mut last) = (1, items.len());
    loop {
        while less(&items[first], &items[0]) {
            first += 1;
        }
        last -= 1;
        while less(&items[0], &items[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        items.swap(first, last);
        first += 1;
    }
}

fn final_insertion_sort<T>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    if items.len() > THRESHOLD {
        insertion_sort(&mut items[..THRESHOLD], less);
        // Past the first run, the smallest item is already in front: no bounds check needed
        // in libstdc++, and the same moves here.
        for i in THRESHOLD..items.len() {
            linear_insert(items, i, less);
        }
    } else {
        insertion_sort(items, less);
    }
}

fn insertion_sort<T>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    for i in 1..items.len() {
        if less(&items[i], &items[0]) {
            // Smaller than everything so far: rotate it to the front.
            items[..=i].rotate_right(1);
        } else {
            linear_insert(items, i, less);
        }
    }
}

/// Moves `items[i]` down past every item greater than it.
fn linear_insert<T>(items: &mut [T], mut i: usize, less: &impl Fn(&T, &T) -> bool) {
    while i > 0 && less(&items[i], &items[i - 1]) {
        items.swap(i, i - 1);
        i -= 1;
    }
}

fn heap_sort<T>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let len = items.len();
    if len < 2 {
        return;
    }
    // make_heap: sift down every parent, last first.
    for parent in (0..=(len - 2) / 2).rev() {
        adjust_heap(items, parent, len, less);
    }
    // sort_heap: move the top behind the shrinking heap, then sift the moved item down.
    for end in (1..len).rev() {
        items.swap(0, end);
        adjust_heap(items, 0, end, less);
    }
}

/// libstdc++'s `__adjust_heap` with the value starting at `hole`: the hole first walks down to
/// a leaf along the larger children, then the value climbs back up (`__push_heap`).
fn adjust_heap<T>(items: &mut [T], mut hole: usize, len: usize, less: &impl Fn(&T, &T) -> bool) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if less(&items[child], &items[child - 1]) {
            child -= 1;
        }
        items.swap(hole, child);
        hole = child;
    }
    if len.is_multiple_of(2) && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        items.swap(hole, child - 1);
        hole = child - 1;
    }
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(&items[parent], &items[hole]) {
            break;
        }
        items.swap(hole, parent);
        hole = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs of `libstdcxx_sort.expected`: `count` keys below `range` from a 64-bit LCG,
    /// each tagged with its input index.
    fn input(count: usize, range: u64, seed: u64) -> Vec<(u64, usize)> {
        let mut state = seed;
        (0..count)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 33) % range, i)
            })
            .collect()
    }

    /// Sorted by g++ 12.2's libstdc++ (Debian 12): `testdata/libstdcxx_sort.cc` prints, per
    /// case, the input indexes in the order `std::sort` (or, for `heap`, the heapsort it falls
    /// back to) leaves them.
    const EXPECTED: &str = include_str!("testdata/libstdcxx_sort.expected");

    #[test]
    fn equal_keys_end_where_libstdcxx_leaves_them() {
        let mut cases = 0;
        for line in EXPECTED.lines() {
            let (header, order) = line.split_once(':').expect("`MODE COUNT RANGE SEED: INDEXES`");
            let mut words = header.split_whitespace();
            let mode = words.next().expect("a mode");
            let numbers: Vec<u64> = words.map(|n| n.parse().expect("number")).collect();
            let [count, range, seed] = numbers[..] else { panic!("bad header {header}") };
            let mut items = input(usize::try_from(count).expect("small"), range, seed);
            let less = |a: &(u64, usize), b: &(u64, usize)| a.0 < b.0;
            match mode {
                "sort" => sort_by_key(&mut items, |&(key, _)| key),
                "heap" => heap_sort(&mut items, &less),
                _ => panic!("unknown mode {mode}"),
            }
            let ours: Vec<String> = items.iter().map(|(_, i)| i.to_string()).collect();
            assert_eq!(ours.join(" "), order.trim(), "case {header}");
            cases += 1;
        }
        assert_eq!(cases, 11);
    }

    #[test]
    fn sorts() {
        for (count, range) in [(0, 1), (1, 1), (17, 3), (1000, 10), (5000, 1 << 40)] {
            let mut items = input(count, range, 7);
            sort_by_key(&mut items, |&(key, _)| key);
            assert!(items.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
}
