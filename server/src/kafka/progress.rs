//! Notices a balance calculator that has records to read and handles none: "stuck", which
//! `/health` reports (a stall no error reveals, e.g. a catch-up that never ends).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Per owned partition, the next offset last seen and since when it has not moved.
pub struct Stall {
    after: Duration,
    seen: BTreeMap<i32, (i64, Instant)>,
}

impl Stall {
    pub fn new(after: Duration) -> Self {
        Stall {
            after,
            seen: BTreeMap::new(),
        }
    }

    /// Why the calculator is stuck, if it is: a partition it owns has records after its next
    /// offset (`ends` are the topic's end offsets) and that offset has not moved for `after`.
    pub fn check(
        &mut self,
        now: Instant,
        ends: &BTreeMap<i32, i64>,
        next: &BTreeMap<i32, i64>,
        owned: &BTreeSet<i32>,
    ) -> Option<String> {
        self.seen.retain(|p, _| owned.contains(p));
        let mut stuck = Vec::new();
        for p in owned {
            let at = next.get(p).copied().unwrap_or(0);
            let lag = ends.get(p).copied().unwrap_or(0) - at;
            if lag <= 0 {
                self.seen.remove(p);
                continue;
            }
            let (last, since) = self.seen.entry(*p).or_insert((at, now));
            if *last != at {
                (*last, *since) = (at, now);
            } else if now.duration_since(*since) >= self.after {
                stuck.push(format!(
                    "partition {p}: {lag} records to read, none handled for {} s",
                    now.duration_since(*since).as_secs()
                ));
            }
        }
        (!stuck.is_empty()).then(|| format!("stuck: {}", stuck.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_with_records_to_read_and_no_progress() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut stall = Stall::new(Duration::from_secs(60));
        let owned = BTreeSet::from([0, 1]);
        let ends = BTreeMap::from([(0, 100), (1, 50)]);
        let mut next = BTreeMap::from([(0, 10), (1, 50)]);
        assert_eq!(stall.check(s(0), &ends, &next, &owned), None);
        assert_eq!(stall.check(s(59), &ends, &next, &owned), None);
        let why = stall.check(s(60), &ends, &next, &owned).expect("stuck");
        assert!(why.contains("partition 0: 90 records"), "{why}");
        assert!(
            !why.contains("partition 1"),
            "caught up is not stuck: {why}"
        );
        // Progress resets the clock.
        next.insert(0, 11);
        assert_eq!(stall.check(s(61), &ends, &next, &owned), None);
        assert_eq!(stall.check(s(120), &ends, &next, &owned), None);
        assert!(stall.check(s(121), &ends, &next, &owned).is_some());
        // A partition given to another member is not this calculator's to read.
        assert_eq!(
            stall.check(s(200), &ends, &next, &BTreeSet::from([1])),
            None
        );
        // Caught up: nothing to read, however long it stays idle.
        next.insert(0, 100);
        assert_eq!(stall.check(s(300), &ends, &next, &owned), None);
        assert_eq!(stall.check(s(900), &ends, &next, &owned), None);
    }
}
