//! Histogram buckets: the kernel-side index scheme of `hist()`/`lhist()` and their row labels.
//!
//! The index functions here are the reference for what the BPF code generator must compute (see the
//! module documentation of `output`). The printing side reproduces bpftrace 0.17's C++ arithmetic,
//! including its 32-bit `int` truncations, because those decide which rows print and how bars look.

/// How many buckets bpftrace's reader allocates per `hist()` key. The kernel only uses 0..=33.
pub const HIST_BUCKETS: usize = 65;

/// The highest index `hist()` produces: every value of 2^31 or more lands here (`[2G, 4G)`).
pub const HIST_MAX_INDEX: usize = 33;

/// How many buckets bpftrace's reader allocates per `lhist()` key (1000 in range + 2 outside).
pub const LHIST_BUCKETS: usize = 1002;

/// The bar of a histogram row is this many columns wide for the largest bucket.
pub(crate) const BAR_WIDTH: usize = 52;

/// The bucket index `hist(v)` stores `v` under, computed the way bpftrace 0.17's `log2` helper does:
/// 0 for negatives, 1 for zero, otherwise 2 plus the sum of five conditional shifts (16, 8, 4, 2, 1),
/// which caps the index at 33.
pub fn hist_index(v: i64) -> usize {
    if v < 0 {
        return 0;
    }
    if v == 0 {
        return 1;
    }
    let mut n = v.unsigned_abs();
    let mut index = 2;
    for i in (0..=4).rev() {
        let threshold = 1u64 << (1u32 << i);
        let shift = if n >= threshold { 1u32 << i } else { 0 };
        n >>= shift;
        index += shift as usize;
    }
    index
}

/// The bucket index `lhist(v, min, max, step)` stores `v` under (bpftrace 0.17's `linear` helper):
/// 0 below `min`, `1 + (max - min) / step` above `max`, else `1 + (v - min) / step`, with unsigned
/// divisions. `step` must be positive (the checker enforces `step >= 1`).
pub fn lhist_index(v: i64, min: i64, max: i64, step: i64) -> usize {
    let step = step.max(1).unsigned_abs();
    let offset = if v < min {
        return 0;
    } else if v > max {
        u64::from_ne_bytes(max.wrapping_sub(min).to_ne_bytes())
    } else {
        u64::from_ne_bytes(v.wrapping_sub(min).to_ne_bytes())
    };
    usize::try_from(offset / step).map_or(usize::MAX, |b| b.saturating_add(1))
}

/// Which rows of a `hist()` print: from the first to the last bucket with a positive count.
/// `max_count` is the largest count, truncated to a C `int` as bpftrace does.
pub(crate) struct Rows {
    pub first: usize,
    pub last: usize,
    pub max_count: i32,
}

/// bpftrace's `hist_prepare`: counts are read into an `int`, so only counts that stay positive after
/// truncation to 32 bits mark a row as used. `None` means nothing prints.
pub(crate) fn hist_rows(counts: &[u64]) -> Option<Rows> {
    let mut first = None;
    let mut last = 0;
    let mut max_count = 0i32;
    for (i, &count) in counts.iter().enumerate() {
        let v = c_int(count);
        if v > 0 {
            first.get_or_insert(i);
            last = i;
        }
        max_count = max_count.max(v);
    }
    first.map(|first| Rows { first, last, max_count })
}

/// bpftrace's `lhist_prepare`: a bucket counts as used for the "anything to print" test when its
/// truncated count is non-zero, but the printed range spans buckets whose count is positive. When no
/// in-range bucket is positive, only bucket 0 prints.
pub(crate) fn lhist_rows(counts: &[u64], buckets: usize) -> Option<Rows> {
    let mut any = false;
    let mut max_count = 0i32;
    for &count in counts {
        let v = c_int(count);
        any |= v != 0;
        max_count = max_count.max(v);
    }
    if !any {
        return None;
    }
    let mut first = None;
    let mut last = 0;
    for i in 0..=buckets.saturating_add(1) {
        if counts.get(i).copied().unwrap_or(0) > 0 {
            first.get_or_insert(i);
            last = i;
        }
    }
    Some(Rows { first: first.unwrap_or(0), last, max_count })
}

/// The bar length: `count / (float)max_count * 52` in single precision, truncated toward zero.
pub(crate) fn bar_width(count: u64, max_count: i32) -> usize {
    if max_count <= 0 {
        return 0;
    }
    #[allow(clippy::cast_precision_loss)] // bpftrace computes in float; we must round the same way
    let width = count as f32 / max_count as f32 * BAR_WIDTH as f32;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    // C's float-to-int truncation
    let width = width as usize;
    width
}

/// The `int` bpftrace reads a `uint64_t` bucket count into.
#[allow(clippy::cast_possible_truncation)] // the truncation is the bpftrace behaviour reproduced
fn c_int(count: u64) -> i32 {
    count as i32
}

/// A `hist()` row label: `(..., 0)`, `[0]`, `[1]`, then `[lo, hi)` with K/M/G/T suffixes.
pub(crate) fn hist_text_label(index: usize) -> String {
    match index {
        0 => "(..., 0)".to_string(),
        1 => "[0]".to_string(),
        2 => "[1]".to_string(),
        _ => format!("[{}, {})", power_label(index - 2), power_label(index - 1)),
    }
}

/// `2^power` with a binary suffix: the suffix is chosen by the power's decade (10 → K, 20 → M,
/// 30 → G, 40+ → T), so `2^32` prints `4G` and `2^50` prints `1024T`.
fn power_label(power: usize) -> String {
    let (power, suffix) = match power {
        40.. => (power - 40, "T"),
        30.. => (power - 30, "G"),
        20.. => (power - 20, "M"),
        10.. => (power - 10, "K"),
        _ => (power, ""),
    };
    format!("{}{suffix}", 1u64 << power.min(63))
}

/// A `hist()` bucket's JSON bounds (`min`, `max` inclusive). bpftrace computes `1 << (i-2)` and
/// `(1 << (i-1)) - 1` in 32-bit `int`, so index 33 gives `"min": -2147483648, "max": 0` (x86 masks
/// the shift count to 5 bits). That is reproduced here.
pub(crate) fn hist_json_bounds(index: usize) -> (Option<i64>, Option<i64>) {
    match index {
        0 => (None, Some(-1)),
        1 => (Some(0), Some(0)),
        2 => (Some(1), Some(1)),
        _ => {
            let shift = |p: usize| 1i32.wrapping_shl(u32::try_from(p).unwrap_or(u32::MAX));
            let low = shift(index - 2);
            let high = shift(index - 1).wrapping_sub(1);
            (Some(i64::from(low)), Some(i64::from(high)))
        }
    }
}

/// The `lhist()` parameters as bpftrace's reader holds them: C `int`s.
#[derive(Clone, Copy)]
pub(crate) struct LhistInts {
    pub min: i32,
    pub max: i32,
    pub step: i32,
    /// `(max - min) / step`: the number of in-range buckets; index `buckets + 1` is `[max, ...)`.
    pub buckets: usize,
}

impl LhistInts {
    /// Truncates the parameters to `int` like bpftrace's `IMap` does. `None` if `step` would divide
    /// by zero or the range is negative (both rejected by the checker).
    #[allow(clippy::cast_possible_truncation)] // the truncation is the bpftrace behaviour reproduced
    pub fn new(min: i64, max: i64, step: i64) -> Option<LhistInts> {
        let (min, max, step) = (min as i32, max as i32, step as i32);
        if step == 0 {
            return None;
        }
        let buckets = usize::try_from(max.wrapping_sub(min).wrapping_div(step)).ok()?;
        Some(LhistInts { min, max, step, buckets })
    }

    /// The lower bound of bucket `index` (1..=buckets), in `int` arithmetic.
    fn low(self, index: usize) -> i32 {
        let i = i32::try_from(index).unwrap_or(i32::MAX);
        i.wrapping_sub(1).wrapping_mul(self.step).wrapping_add(self.min)
    }

    /// A row label: `(..., min)`, `[lo, hi)` or `[max, ...)`.
    pub fn text_label(self, index: usize) -> String {
        if index == 0 {
            format!("(..., {})", lhist_number(self.min))
        } else if index == self.buckets + 1 {
            format!("[{}, ...)", lhist_number(self.max))
        } else {
            let low = self.low(index);
            format!("[{}, {})", lhist_number(low), lhist_number(low.wrapping_add(self.step)))
        }
    }

    /// A bucket's JSON bounds (`max` inclusive); the outer buckets lack one side.
    pub fn json_bounds(self, index: usize) -> (Option<i64>, Option<i64>) {
        if index == 0 {
            (None, Some(i64::from(self.min.wrapping_sub(1))))
        } else if index == self.buckets + 1 {
            (Some(i64::from(self.max)), None)
        } else {
            let low = self.low(index);
            let high = low.wrapping_add(self.step).wrapping_sub(1);
            (Some(i64::from(low)), Some(i64::from(high)))
        }
    }
}

/// An `lhist()` boundary: `M` when divisible by 2^20, else `K` when divisible by 1024, else plain.
/// Each boundary is judged on its own, so step 512 gives `[512, 1K)`, `[1K, 1536)`.
fn lhist_number(n: i32) -> String {
    const KILO: i32 = 1024;
    const MEGA: i32 = 1024 * 1024;
    if n == 0 {
        "0".to_string()
    } else if n % MEGA == 0 {
        format!("{}M", n / MEGA)
    } else if n % KILO == 0 {
        format!("{}K", n / KILO)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_index_matches_bpftrace_log2() {
        assert_eq!(hist_index(-5), 0);
        assert_eq!(hist_index(i64::MIN), 0);
        assert_eq!(hist_index(0), 1);
        assert_eq!(hist_index(1), 2);
        assert_eq!(hist_index(2), 3);
        assert_eq!(hist_index(3), 3);
        assert_eq!(hist_index(4), 4);
        assert_eq!(hist_index(1023), 11);
        assert_eq!(hist_index(1024), 12);
        assert_eq!(hist_index((1 << 31) - 1), 32);
        assert_eq!(hist_index(1 << 31), 33);
        assert_eq!(hist_index(1 << 40), 33);
        assert_eq!(hist_index(i64::MAX), 33);
        for p in 0..31 {
            assert_eq!(hist_index(1 << p), p + 2, "2^{p}");
            assert_eq!(hist_index((1 << (p + 1)) - 1), p + 2, "2^{}-1", p + 1);
        }
    }

    #[test]
    fn lhist_index_matches_bpftrace_linear() {
        assert_eq!(lhist_index(-1, 0, 10, 3), 0);
        assert_eq!(lhist_index(0, 0, 10, 3), 1);
        assert_eq!(lhist_index(4, 0, 10, 3), 2);
        // (max - min) is not a multiple of step: 9 and 10 share the overflow bucket.
        assert_eq!(lhist_index(9, 0, 10, 3), 4);
        assert_eq!(lhist_index(10, 0, 10, 3), 4);
        assert_eq!(lhist_index(100, 0, 10, 3), 4);
        assert_eq!(lhist_index(10, 0, 10, 1), 11);
        assert_eq!(lhist_index(9, 0, 10, 1), 10);
    }

    #[test]
    fn hist_labels() {
        assert_eq!(hist_text_label(0), "(..., 0)");
        assert_eq!(hist_text_label(3), "[2, 4)");
        assert_eq!(hist_text_label(11), "[512, 1K)");
        assert_eq!(hist_text_label(21), "[512K, 1M)");
        assert_eq!(hist_text_label(33), "[2G, 4G)");
        assert_eq!(hist_text_label(41), "[512G, 1T)");
        assert_eq!(hist_text_label(52), "[1024T, 2048T)");
        assert_eq!(hist_json_bounds(0), (None, Some(-1)));
        assert_eq!(hist_json_bounds(32), (Some(1 << 30), Some((1 << 31) - 1)));
        assert_eq!(hist_json_bounds(33), (Some(-2_147_483_648), Some(0)));
    }

    #[test]
    fn lhist_labels_pick_suffixes_per_boundary() {
        let p = LhistInts::new(0, 3000, 512).unwrap_or_else(|| unreachable!());
        assert_eq!(p.buckets, 5);
        assert_eq!(p.text_label(0), "(..., 0)");
        assert_eq!(p.text_label(2), "[512, 1K)");
        assert_eq!(p.text_label(3), "[1K, 1536)");
        assert_eq!(p.text_label(6), "[3000, ...)");
        assert_eq!(p.json_bounds(0), (None, Some(-1)));
        assert_eq!(p.json_bounds(3), (Some(1024), Some(1535)));
        assert_eq!(p.json_bounds(6), (Some(3000), None));
        assert!(LhistInts::new(0, 10, 0).is_none());
    }

    #[test]
    fn bars_use_single_precision() {
        assert_eq!(bar_width(1, 3), 17);
        assert_eq!(bar_width(1, 2), 26);
        assert_eq!(bar_width(3, 3), 52);
        assert_eq!(bar_width(0, 3), 0);
    }

    #[test]
    fn rows_trim_empty_ends() {
        let rows = hist_rows(&[0, 0, 1, 0, 2, 0, 0]).unwrap_or_else(|| unreachable!());
        assert_eq!((rows.first, rows.last, rows.max_count), (2, 4, 2));
        assert!(hist_rows(&[0; 65]).is_none());
        // Only the underflow bucket is positive: the scan over in-range buckets still finds it.
        let rows = lhist_rows(&[3, 0, 0], 1).unwrap_or_else(|| unreachable!());
        assert_eq!((rows.first, rows.last), (0, 0));
    }
}
