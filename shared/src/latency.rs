//! Produce → applied latency over a sliding window: one small histogram per second, so memory
//! is fixed however many records pass, and percentiles are exact to within one bucket (≤ 10 %
//! above 10 ms, exact below).

use serde::{Deserialize, Serialize};

/// Seconds in the window.
pub const WINDOW_SECONDS: usize = 10;
const BUCKETS: usize = 160;

/// p50/p99 of the last [`WINDOW_SECONDS`], in ms (`None` without records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// The first bucket whose [`upper`] bound holds `ms` (the last one holds everything above).
fn bucket(ms: i64) -> usize {
    if ms < 10 {
        return ms.max(0) as usize;
    }
    // A search over the bounds computed once (each record costs one, at any rate).
    let bounds = bounds();
    (10 + bounds[10..].partition_point(|&b| b < ms)).min(BUCKETS - 1)
}

fn bounds() -> &'static [i64; BUCKETS] {
    static BOUNDS: std::sync::OnceLock<[i64; BUCKETS]> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| std::array::from_fn(compute_upper))
}

/// The highest value a bucket holds (what a percentile falling in it reports).
fn upper(b: usize) -> i64 {
    bounds()[b.min(BUCKETS - 1)]
}

fn compute_upper(b: usize) -> i64 {
    if b < 10 {
        return b as i64;
    }
    (10.0 * 1.1f64.powi(b as i32 - 9)).ceil() as i64 - 1
}

/// Upper bounds (ms) of the histogram kept since start for `/metrics`: Prometheus computes
/// rates and quantiles from ever-growing counts, which the window cannot give.
pub const TOTAL_BOUNDS_MS: [i64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// Every latency recorded since start: how many, their sum, and how many fell in each bucket
/// (at most [`TOTAL_BOUNDS_MS`]`[i]` and above the bound before; the last holds the rest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyTotals {
    pub count: u64,
    pub sum_ms: u64,
    pub buckets: [u64; TOTAL_BOUNDS_MS.len() + 1],
}

impl LatencyTotals {
    fn record(&mut self, ms: i64) {
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms as u64);
        self.buckets[TOTAL_BOUNDS_MS.partition_point(|&b| b < ms)] += 1;
    }
}

#[derive(Clone, Debug)]
pub struct LatencyWindow {
    /// Per second: which second it holds (since the epoch) and its counts.
    seconds: [(i64, [u32; BUCKETS], i64); WINDOW_SECONDS],
    totals: LatencyTotals,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            seconds: [(i64::MIN, [0; BUCKETS], 0); WINDOW_SECONDS],
            totals: LatencyTotals::default(),
        }
    }
}

impl LatencyWindow {
    /// One record applied at `now_ms` that was produced `latency_ms` earlier.
    pub fn record(&mut self, now_ms: i64, latency_ms: i64) {
        let sec = now_ms.div_euclid(1000);
        let slot = &mut self.seconds[sec.rem_euclid(WINDOW_SECONDS as i64) as usize];
        if slot.0 != sec {
            *slot = (sec, [0; BUCKETS], 0);
        }
        let l = latency_ms.max(0);
        let b = &mut slot.1[bucket(l)];
        *b = b.saturating_add(1);
        slot.2 = slot.2.max(l);
        self.totals.record(l);
    }

    /// Everything recorded since start.
    pub fn totals(&self) -> &LatencyTotals {
        &self.totals
    }

    pub fn summary(&self, now_ms: i64) -> LatencySummary {
        let sec = now_ms.div_euclid(1000);
        let mut counts = [0u64; BUCKETS];
        let mut max = None::<i64>;
        for (s, c, m) in &self.seconds {
            if *s > sec - WINDOW_SECONDS as i64 && *s <= sec {
                for (t, n) in counts.iter_mut().zip(c) {
                    *t += *n as u64;
                }
                if c.iter().any(|&n| n > 0) {
                    max = Some(max.map_or(*m, |x: i64| x.max(*m)));
                }
            }
        }
        let total: u64 = counts.iter().sum();
        let pct = |q: f64| {
            if total == 0 {
                return None;
            }
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (b, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Some(upper(b).min(max.unwrap_or(i64::MAX)));
                }
            }
            max
        };
        LatencySummary {
            count: total,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_keep_every_latency_in_its_bucket() {
        let mut w = LatencyWindow::default();
        for (at, ms) in [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 100),
            (5, 101),
            (90_000, 70_000),
        ] {
            w.record(at, ms);
        }
        let t = w.totals();
        assert_eq!((t.count, t.sum_ms), (7, 70_207));
        // ≤ 1: 0 and 1; ≤ 2: 2; ≤ 5: 3; ≤ 100: 100; ≤ 200: 101; above 60 000: 70 000.
        let mut want = [0; TOTAL_BOUNDS_MS.len() + 1];
        (want[0], want[1], want[2], want[6], want[7], want[15]) = (2, 1, 1, 1, 1, 1);
        assert_eq!(t.buckets, want);
        // Unlike the window, the totals do not forget.
        assert_eq!(w.summary(200_000).count, 0);
        assert_eq!(w.totals().count, 7);
    }

    #[test]
    fn buckets_hold_their_values() {
        for ms in [0, 1, 9, 10, 11, 50, 99, 100, 1234, 60_000, 3_600_000] {
            let b = bucket(ms);
            assert!(upper(b) >= ms.min(upper(BUCKETS - 1)), "{ms} in {b}");
            if b > 0 {
                assert!(upper(b - 1) < ms, "{ms}: bucket {b} too high");
            }
            if ms >= 10 && b < BUCKETS - 1 {
                assert!(
                    upper(b) as f64 <= ms as f64 * 1.1 + 1.0,
                    "{ms} → {}",
                    upper(b)
                );
            }
        }
    }

    #[test]
    fn percentiles_of_the_last_ten_seconds() {
        let mut w = LatencyWindow::default();
        assert_eq!(w.summary(0).count, 0);
        // 98 fast records and 2 slow ones.
        for i in 0..98 {
            w.record(5_000 + i, 4);
        }
        w.record(5_500, 800);
        w.record(5_600, 900);
        let s = w.summary(6_000);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, Some(4));
        assert!((800..=900).contains(&s.p99_ms.unwrap()), "{s:?}");
        assert_eq!(s.max_ms, Some(900));
        // Ten seconds later they have left the window.
        assert_eq!(w.summary(15_000).count, 0);
        w.record(15_000, 20);
        let s = w.summary(15_000);
        assert_eq!(s.count, 1);
        assert!((20..=22).contains(&s.p50_ms.unwrap()));
    }
}
