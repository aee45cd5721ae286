//! What this server's producer did (`/api/producer`, the page's counters) and the generator's
//! settings as the page shows them.
//!
//! Written by the producer actor ([`crate::pipeline::producer`]) and its delivery reports
//! (`producer::delivery`, on librdkafka's thread).

use std::sync::Mutex;

use cashflow_shared::api::ProducerStats;
use cashflow_shared::protocol::GeneratorStatus;
use cashflow_shared::{AccountId, Money};

use super::lock;

#[derive(Default)]
pub struct ProducerBoard {
    stats: Mutex<ProducerStats>,
    generator: Mutex<Option<GeneratorStatus>>,
}

/// The producer's counters alone (its stats also hold a map per account).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Generation is held because the broker is unreachable.
    pub held: bool,
}

impl Counts {
    /// Handed to librdkafka and not reported delivered or failed yet.
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.failed)
    }
}

impl ProducerBoard {
    pub fn stats(&self) -> ProducerStats {
        lock(&self.stats).clone()
    }

    pub fn counts(&self) -> Counts {
        let p = lock(&self.stats);
        Counts {
            sent: p.sent,
            delivered: p.delivered,
            failed: p.failed,
            held: p.held,
        }
    }

    /// The generator runs (or not) at `rate` (`None`: as fast as it can).
    pub fn set_running(&self, running: bool, rate: Option<f64>) {
        let mut p = lock(&self.stats);
        p.running = running;
        p.rate = rate;
    }

    /// Generation is held while the broker is unreachable; returns whether it was.
    pub fn set_held(&self, held: bool) -> bool {
        std::mem::replace(&mut lock(&self.stats).held, held)
    }

    /// A record was handed to librdkafka.
    pub fn sent(&self) {
        lock(&self.stats).sent += 1;
    }

    /// Kafka acknowledged a record of `account` changing it by `delta`.
    pub fn delivered(&self, account: AccountId, delta: Money) {
        let mut p = lock(&self.stats);
        p.delivered += 1;
        let t = p.delivered_by_account.entry(account).or_default();
        t.net = t.net.checked_add(delta).unwrap_or(t.net);
        t.count += 1;
    }

    /// A record could not be handed over, or its delivery failed.
    pub fn failed(&self, reason: String) {
        let mut p = lock(&self.stats);
        p.failed += 1;
        p.last_error = Some(reason);
    }

    /// A fatal error made the producer unusable and a new one took over.
    pub fn replaced(&self, reason: &str) {
        let mut p = lock(&self.stats);
        p.replaced += 1;
        p.last_error = Some(format!("fatal producer error, producer replaced: {reason}"));
    }

    /// The producer was created again with new batching.
    pub fn reconfigured(&self) {
        lock(&self.stats).reconfigured += 1;
    }

    /// The topic's records are gone: so are the totals delivered to it.
    pub fn forget_delivered(&self) {
        lock(&self.stats).delivered_by_account.clear();
    }

    pub fn generator(&self) -> Option<GeneratorStatus> {
        lock(&self.generator).clone()
    }

    pub fn set_generator(&self, g: GeneratorStatus) {
        *lock(&self.generator) = Some(g);
    }
}
