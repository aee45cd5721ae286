//! A log that cannot flood: at most so many events a second, then a count of the rest.

use std::time::Duration;

/// Logs at most `per_second` events a second, then how many were held back.
pub struct RateLimitedLog {
    per_second: u32,
    window_start: std::time::Instant,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new(per_second: u32) -> Self {
        RateLimitedLog {
            per_second,
            window_start: std::time::Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// `n` events not logged at all (counted in the next "held back").
    pub fn held_back(&mut self, n: u64) {
        self.suppressed += n;
    }

    /// Whether to log this event; `Some(n)` as the second value when `n` were held back
    /// in the window that just ended.
    pub fn admit(&mut self) -> (bool, Option<u64>) {
        let mut held = None;
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                held = Some(self.suppressed);
            }
            self.window_start = std::time::Instant::now();
            self.in_window = 0;
            self.suppressed = 0;
        }
        if self.in_window < self.per_second {
            self.in_window += 1;
            (true, held)
        } else {
            self.suppressed += 1;
            (false, held)
        }
    }
}
