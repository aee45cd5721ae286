//! The outage lesson: the Apache Kafka broker cashflow runs is stopped (SIGTERM) for a few
//! seconds. Generation is held while it is away (what was in flight waits in the producer), and once it is back every
//! transaction is delivered exactly once: the idempotent producer's retries are not written
//! twice, and the invariant (each acknowledged transaction applied once) holds again. The page
//! shows the outage as it happens and how long recovery took.

use serde::{Deserialize, Serialize};

/// Shortest and longest outage the presenter can ask for.
pub const MIN_OUTAGE_SECONDS: u32 = 1;
pub const MAX_OUTAGE_SECONDS: u32 = 120;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageState {
    #[default]
    Idle,
    /// The broker is stopped.
    Down,
    /// It is back; waiting for deliveries to resume and the invariant to hold.
    Recovering,
    /// Everything in flight was delivered, exactly once, and applied.
    Recovered,
    /// Not recovered in time, or the broker could not start again.
    Failed,
}

/// One outage as the page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageStatus {
    pub state: OutageState,
    /// How long the broker stays (or stayed) away.
    pub seconds: u32,
    pub started_ms: i64,
    /// When it was back, and how long from then until recovered.
    pub back_ms: i64,
    pub recovery_ms: u64,
    /// Generation was held while the broker was away.
    pub held: bool,
    /// Transactions waiting in the producer when the broker came back (sent, not yet
    /// acknowledged), and how many were acknowledged since the outage began.
    pub in_flight_at_back: u64,
    pub delivered_since: u64,
    /// Deliveries that failed, and records the calculator refused as duplicates, since the
    /// outage began: both stay 0 when nothing is lost and nothing is written twice.
    pub failed: u64,
    pub duplicates: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl OutageStatus {
    /// The sentence the page shows.
    pub fn describe(&self) -> String {
        match self.state {
            OutageState::Idle => "no outage yet".into(),
            OutageState::Down => format!(
                "the broker is down for {} s{}",
                self.seconds,
                if self.held {
                    ": generation held, what was sent waits in the producer"
                } else {
                    ""
                }
            ),
            OutageState::Recovering => format!(
                "the broker is back: {} transactions were waiting in the producer; delivering them and catching up",
                self.in_flight_at_back
            ),
            OutageState::Recovered => format!(
                "✓ recovered {:.1} s after the broker came back: {} delivered since the outage began, {} lost, {} written twice; every acknowledged transaction applied exactly once",
                self.recovery_ms as f64 / 1000.0,
                self.delivered_since,
                self.failed,
                self.duplicates
            ),
            OutageState::Failed => format!("✗ {}", self.note),
        }
    }

    /// Whether it is over.
    pub fn finished(&self) -> bool {
        matches!(
            self.state,
            OutageState::Idle | OutageState::Recovered | OutageState::Failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_told_each_step() {
        let mut s = OutageStatus {
            state: OutageState::Down,
            seconds: 5,
            held: true,
            ..OutageStatus::default()
        };
        assert!(s.describe().contains("down for 5 s: generation held"));
        assert!(!s.finished());
        s.state = OutageState::Recovered;
        s.recovery_ms = 1_250;
        s.delivered_since = 40;
        let text = s.describe();
        assert!(text.contains("✓ recovered 1.2 s"), "{text}");
        assert!(text.contains("0 lost, 0 written twice"), "{text}");
        assert!(s.finished());
        let m = crate::protocol::ServerMsg::Outage {
            id: None,
            outage: s,
        };
        let back: crate::protocol::ServerMsg = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }
}
