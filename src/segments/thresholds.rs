//! Quintile and tier thresholds from each store's histogram of values.
//!
//! A customer whose value has `less` customers strictly below it, among
//! `total` in the store, scores `1 + floor(5 * less / total)` (`RANK()`
//! semantics: ties share a score). Since `less` only grows with the value,
//! "score > k" is "value >= u_k", where `u_k` is the first value of the
//! histogram, in ascending order, with `5 * less >= k * total`. A value is
//! in the top `p` % for the tiers when fewer than `p` % of the customers are
//! strictly above it: the threshold is the first value with
//! `(total - less - n) * 100 < p * total`.
//!
//! The histogram (`segment_histogram`) holds a row per distinct value, so a
//! scan in key order finds every threshold in one pass, without holding the
//! rows.

use std::collections::{BTreeMap, HashMap};

use super::rules::TierRules;

/// Stands for "no threshold": no value reaches it.
pub const UNREACHABLE: i64 = 1 << 62;

/// The thresholds of one store key, in the order of `seg_thr`'s columns:
/// `r1..r4`, `f1..f4`, `m1..m4`, `t1` (vip), `t2` (core).
pub type ThresholdRow = [i64; 14];

/// Why the histogram could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("segment_histogram has an unknown metric {0:?}")]
    UnknownMetric(String),
    #[error(
        "segment_histogram rows are out of order at metric {metric:?}, store {store_key:?}, value {value}"
    )]
    OutOfOrder {
        metric: String,
        store_key: String,
        value: i64,
    },
}

/// The position of a metric's first threshold in a [`ThresholdRow`].
fn first_column(metric: &str) -> Result<usize, ThresholdError> {
    match metric {
        "r" => Ok(0),
        "f" => Ok(4),
        "m" => Ok(8),
        "t" => Ok(12),
        other => Err(ThresholdError::UnknownMetric(other.to_owned())),
    }
}

/// Where the scan is: the current (metric, store key), the count below the
/// current value, and the thresholds found so far for it.
struct Partition {
    metric: String,
    store_key: String,
    first: usize,
    total: i64,
    less: i64,
    last_value: i64,
    found: [Option<i64>; 14],
}

/// Finds the thresholds while the histogram streams by in
/// `(metric, store_key, value)` order.
pub struct ThresholdScan {
    /// Tier cut-offs in percent: vip, vip + core.
    tiers: [i64; 2],
    totals: HashMap<(String, String), i64>,
    current: Option<Partition>,
    found: BTreeMap<String, [Option<i64>; 14]>,
}

impl ThresholdScan {
    /// `totals` holds (metric, store key, customers counted) per partition.
    pub fn new(tiers: &TierRules, totals: impl IntoIterator<Item = (String, String, i64)>) -> Self {
        let vip = i64::from(tiers.vip_top_percent);
        ThresholdScan {
            tiers: [vip, vip + i64::from(tiers.core_next_percent)],
            totals: totals.into_iter().map(|(m, s, n)| ((m, s), n)).collect(),
            current: None,
            found: BTreeMap::new(),
        }
    }

    /// The next histogram row: `n` customers of `store_key` have `value`.
    pub fn push(
        &mut self,
        metric: &str,
        store_key: &str,
        value: i64,
        n: i64,
    ) -> Result<(), ThresholdError> {
        let p = match &mut self.current {
            Some(p) if p.metric == metric && p.store_key == store_key => {
                if value <= p.last_value {
                    return Err(ThresholdError::OutOfOrder {
                        metric: metric.to_owned(),
                        store_key: store_key.to_owned(),
                        value,
                    });
                }
                p.last_value = value;
                p
            }
            slot => {
                let first = first_column(metric)?;
                if let Some(done) = slot.take() {
                    Self::keep(&mut self.found, done);
                }
                let key = (metric.to_owned(), store_key.to_owned());
                let total = self.totals.get(&key).copied().unwrap_or(0);
                slot.insert(Partition {
                    metric: key.0,
                    store_key: key.1,
                    first,
                    total,
                    less: 0,
                    last_value: value,
                    found: [None; 14],
                })
            }
        };
        if p.first == 12 {
            let above = p.total - p.less - n;
            for (k, percent) in self.tiers.iter().enumerate() {
                if p.found[12 + k].is_none() && above * 100 < percent * p.total {
                    p.found[12 + k] = Some(value);
                }
            }
        } else {
            for k in 1..=4i64 {
                let slot = &mut p.found[p.first + k as usize - 1];
                if slot.is_none() && 5 * p.less >= k * p.total {
                    *slot = Some(value);
                }
            }
        }
        p.less += n;
        Ok(())
    }

    /// Add a finished partition's thresholds to its store's.
    fn keep(found: &mut BTreeMap<String, [Option<i64>; 14]>, done: Partition) {
        let row = found.entry(done.store_key).or_insert([None; 14]);
        for (slot, value) in row.iter_mut().zip(done.found) {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    /// The thresholds of each of `store_keys` ([`UNREACHABLE`] where its
    /// histogram has no value that qualifies).
    pub fn finish<'a>(
        mut self,
        store_keys: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, ThresholdRow)> {
        if let Some(done) = self.current.take() {
            Self::keep(&mut self.found, done);
        }
        store_keys
            .into_iter()
            .map(|key| {
                let found = self.found.get(key).copied().unwrap_or([None; 14]);
                (key.to_owned(), found.map(|v| v.unwrap_or(UNREACHABLE)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(rows: &[(&str, &str, i64, i64)]) -> Vec<(String, ThresholdRow)> {
        let mut totals: HashMap<(String, String), i64> = HashMap::new();
        for (m, s, _, n) in rows {
            *totals.entry(((*m).into(), (*s).into())).or_default() += n;
        }
        let mut scan = ThresholdScan::new(
            &TierRules::default(),
            totals.into_iter().map(|((m, s), n)| (m, s, n)),
        );
        for (m, s, v, n) in rows {
            scan.push(m, s, *v, *n).unwrap();
        }
        scan.finish(["", "A"])
    }

    /// Scores by the definition: 1 + floor(5 * less / total).
    fn score(values: &[i64], v: i64) -> i64 {
        let less = values.iter().filter(|x| **x < v).count() as i64;
        1 + 5 * less / values.len() as i64
    }

    #[test]
    fn ten_distinct_values_make_even_quintiles() {
        let rows: Vec<_> = (1..=10).map(|v| ("f", "A", v, 1)).collect();
        let out = scan(&rows);
        assert_eq!(out[1].0, "A");
        // Values 1-2 score 1, 3-4 score 2, ... 9-10 score 5.
        assert_eq!(&out[1].1[4..8], &[3, 5, 7, 9]);
        // The store without rows reaches no threshold.
        assert_eq!(out[0].1, [UNREACHABLE; 14]);
    }

    #[test]
    fn thresholds_agree_with_the_rank_definition_for_ties() {
        // Values with multiplicities, ties across quintile boundaries.
        let spec = [(5, 3), (7, 1), (8, 4), (20, 1), (21, 2), (40, 6)];
        let values: Vec<i64> = spec
            .iter()
            .flat_map(|(v, n)| std::iter::repeat_n(*v, *n as usize))
            .collect();
        let rows: Vec<_> = spec.iter().map(|(v, n)| ("m", "A", *v, *n)).collect();
        let t = scan(&rows)[1].1;
        for (v, _) in spec {
            let by_threshold = 1 + t[8..12].iter().filter(|u| v >= **u).count() as i64;
            assert_eq!(by_threshold, score(&values, v), "value {v}");
        }
    }

    #[test]
    fn tiers_take_the_top_ten_and_next_thirty_percent() {
        // 100 customers with spends 1..=100: the top 10 % are 91..=100.
        let rows: Vec<_> = (1..=100).map(|v| ("t", "A", v, 1)).collect();
        let t = scan(&rows)[1].1;
        assert_eq!((t[12], t[13]), (91, 61));
        // Not a score metric: the score thresholds stay unreachable.
        assert_eq!(&t[..12], &[UNREACHABLE; 12]);
    }

    #[test]
    fn a_tie_at_the_cut_off_is_all_in_or_all_out() {
        // 10 customers at 50 and 90 below: fewer than 10 % are above 50, so
        // all ten are vip.
        let rows = [("t", "A", 1, 90), ("t", "A", 50, 10)];
        assert_eq!(scan(&rows)[1].1[12], 50);
        // 11 at the top value: 10 % of 100 is still only the value itself.
        let rows = [("t", "A", 1, 89), ("t", "A", 50, 11)];
        assert_eq!(scan(&rows)[1].1[12], 50);
    }

    #[test]
    fn each_store_gathers_the_thresholds_of_every_metric() {
        // Key order: metric, then store, then value.
        let mut rows = Vec::new();
        for m in ["f", "m", "r", "t"] {
            for store in ["", "A"] {
                let offset = if store.is_empty() { 100 } else { 0 };
                rows.extend((1..=10).map(|v| (m, store, offset + v, 1)));
            }
        }
        let out = scan(&rows);
        for (store, offset) in [(&out[0], 100), (&out[1], 0)] {
            let quintiles = [3, 5, 7, 9].map(|v| v + offset);
            assert_eq!(&store.1[0..4], &quintiles, "r of {:?}", store.0);
            assert_eq!(&store.1[4..8], &quintiles, "f of {:?}", store.0);
            assert_eq!(&store.1[8..12], &quintiles, "m of {:?}", store.0);
            // vip: the top 10 % (the 10th value); core: the next 30 % (7th to 9th).
            assert_eq!((store.1[12], store.1[13]), (10 + offset, 7 + offset));
        }
    }

    #[test]
    fn rows_out_of_order_are_an_error() {
        let mut s = ThresholdScan::new(&TierRules::default(), [("r".into(), "A".into(), 2)]);
        s.push("r", "A", 5, 1).unwrap();
        assert!(matches!(
            s.push("r", "A", 4, 1),
            Err(ThresholdError::OutOfOrder { value: 4, .. })
        ));
        assert_eq!(
            s.push("x", "A", 4, 1),
            Err(ThresholdError::UnknownMetric("x".into()))
        );
    }
}
