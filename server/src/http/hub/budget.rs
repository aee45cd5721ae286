//! The hub's two token buckets: frames a second, and items (account rows, log lines) a second.

use std::time::{Duration, Instant};

use super::{FRAME_BURST, FRAMES_PER_SECOND};

/// The frame rate's token bucket: [`FRAMES_PER_SECOND`] a second, [`FRAME_BURST`] at once.
#[derive(Debug)]
pub(super) struct FrameBudget {
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    pub(super) fn new(now: Instant) -> Self {
        FrameBudget {
            tokens: FRAME_BURST,
            at: now,
        }
    }

    /// Takes one frame's token: how long to wait before it may go out.
    pub(super) fn take(&mut self, now: Instant) -> Duration {
        let rate = FRAMES_PER_SECOND as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(FRAME_BURST);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }

    /// The frame was not sent after all (nothing had changed).
    pub(super) fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(FRAME_BURST);
    }
}

/// A token bucket of items (rows, lines): `rate` a second, `burst` at most at once.
#[derive(Debug)]
pub(super) struct Allowance {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Allowance {
    pub(super) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Allowance {
            tokens: burst,
            rate,
            burst,
            at: now,
        }
    }

    pub(super) fn available(&mut self, now: Instant) -> f64 {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        self.tokens
    }

    /// Takes `n` if there are that many (or `n` is more than a burst and the bucket is full).
    pub(super) fn take(&mut self, n: f64, now: Instant) -> bool {
        let have = self.available(now);
        if n <= have || have >= self.burst {
            self.tokens -= n.min(have);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_to_their_rate_after_a_burst() {
        let t0 = Instant::now();
        let mut b = FrameBudget::new(t0);
        // After a quiet spell, three go out at once; the fourth waits one slot.
        for _ in 0..3 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        let slot = Duration::from_millis(1000 / FRAMES_PER_SECOND);
        let wait = b.take(t0);
        assert!(
            wait > slot - Duration::from_millis(1) && wait <= slot,
            "{wait:?}"
        );
        // Woken without pause for a second: no more than the rate (and the burst) go out.
        let mut at = t0 + wait;
        let mut sent = 4;
        while at < t0 + Duration::from_secs(1) {
            at += b.take(at).max(Duration::from_millis(1));
            sent += 1;
        }
        assert!(sent <= FRAMES_PER_SECOND as usize + 4, "{sent}");
        // A frame not sent gives its slot back.
        let mut q = FrameBudget::new(t0);
        for _ in 0..10 {
            assert_eq!(q.take(t0), Duration::ZERO);
            q.give_back();
        }
    }
}
