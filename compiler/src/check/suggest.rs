//! "Did you mean": the names nearest a misspelt one, by edit distance.

/// Up to `n` candidates closest to `wanted` (names sharing its text, or a few edits away), nearest
/// first: the names an "unknown field" error lists.
pub(crate) fn nearest<'n>(wanted: &str, candidates: impl Iterator<Item = &'n str>, n: usize) -> Vec<&'n str> {
    let limit = (wanted.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .filter_map(|c| {
            let d = edit_distance(wanted, c);
            let shares = c.len() >= 3 && wanted.len() >= 3 && (c.contains(wanted) || wanted.contains(c));
            (d <= limit || shares).then_some((if shares { d.min(limit) } else { d }, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// The candidate closest to `wanted`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'n>(wanted: &str, candidates: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    candidates
        .map(|c| (edit_distance(wanted, c), c))
        .filter(|(d, c)| *d <= (wanted.len().max(c.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// Up to `n` names from `all` closest to `wanted` by edit distance, nearest first.
pub(super) fn nearest_names(wanted: &str, all: &[String], n: usize) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = all.iter().map(|name| (edit_distance(wanted, name), name)).collect();
    scored.sort();
    let limit = wanted.len() / 3 + 2;
    scored.into_iter().filter(|(d, _)| *d <= limit).take(n).map(|(_, s)| s.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    // Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours
    // (`pdi` is one edit from `pid`).
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    let mut d: Vec<usize> = vec![0; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best =
                    (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}
