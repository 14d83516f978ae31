//! Deterministic train/validation splits: stratified by class, or plain random (for
//! multi-label and regression targets, which have no single class to stratify by).

use std::collections::BTreeMap;

use tessera_tokens::Rng;

/// Splits sample indices `0..y.len()` into `(train, validation)`, class by class.
///
/// For each label (in increasing order) its indices are shuffled with one
/// `Rng::new(seed)` stream and `round(count * val_fraction)` of them go to validation,
/// but at least one stays in training. `val_fraction` is clamped to `[0, 1]` (NaN counts
/// as 0). Both index lists are returned sorted; together they are a partition of
/// `0..y.len()`. The same `y`, fraction and seed always give the same split.
pub fn stratified_split(y: &[usize], val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let fraction = if val_fraction.is_nan() {
        0.0
    } else {
        val_fraction.clamp(0.0, 1.0)
    };
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &label) in y.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let mut rng = Rng::new(seed);
    let mut train = Vec::with_capacity(y.len());
    let mut val = Vec::new();
    for idx in by_class.values_mut() {
        rng.shuffle(idx);
        let count = idx.len();
        let n_val = ((count as f64 * fraction).round() as usize).min(count.saturating_sub(1));
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Splits sample indices `0..n` into `(train, validation)` at random: one
/// `Rng::new(seed)` permutation, whose first `round(n * val_fraction)` entries go to
/// validation, but at least one sample stays in training. `val_fraction` is clamped to
/// `[0, 1]` (NaN counts as 0). Both lists are sorted and together partition `0..n`.
pub fn random_split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let fraction = if val_fraction.is_nan() {
        0.0
    } else {
        val_fraction.clamp(0.0, 1.0)
    };
    let order = Rng::new(seed).permutation(n);
    let n_val = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_split_is_a_deterministic_partition() {
        let (tr, va) = random_split(50, 0.2, 3);
        assert_eq!((tr.len(), va.len()), (40, 10));
        assert_eq!((tr.clone(), va.clone()), random_split(50, 0.2, 3));
        assert_ne!(va, random_split(50, 0.2, 4).1);
        let mut all: Vec<usize> = tr.iter().chain(&va).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(random_split(1, 1.0, 0), (vec![0], vec![]));
        assert_eq!(random_split(0, 0.5, 0), (vec![], vec![]));
        assert_eq!(random_split(3, f64::NAN, 0).1.len(), 0);
    }

    #[test]
    fn split_is_stratified_deterministic_and_a_partition() {
        let y: Vec<usize> = (0..100)
            .map(|i| {
                if i < 80 {
                    0
                } else if i < 95 {
                    1
                } else {
                    7
                }
            })
            .collect();
        let (tr, va) = stratified_split(&y, 0.2, 42);
        assert_eq!((tr.clone(), va.clone()), stratified_split(&y, 0.2, 42));
        assert_ne!(va, stratified_split(&y, 0.2, 43).1);
        let mut all: Vec<usize> = tr.iter().chain(&va).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let count = |idx: &[usize], c| idx.iter().filter(|&&i| y[i] == c).count();
        assert_eq!((count(&va, 0), count(&va, 1), count(&va, 7)), (16, 3, 1));
        assert_eq!(tr.len(), 80);
    }

    #[test]
    fn edge_cases() {
        // A singleton class stays in training; fraction 1 keeps one sample per class.
        let (tr, va) = stratified_split(&[3, 1, 1, 1], 1.0, 0);
        assert_eq!(tr.len(), 2);
        assert_eq!(va.len(), 2);
        assert!(tr.contains(&0));
        assert_eq!(stratified_split(&[0, 1], f64::NAN, 0), (vec![0, 1], vec![]));
        assert_eq!(stratified_split(&[], 0.5, 0), (vec![], vec![]));
        assert_eq!(
            stratified_split(&[usize::MAX, 0], 0.5, 0).1,
            Vec::<usize>::new()
        );
    }
}
