//! The balance calculator (group `<prefix>-balance`): the authority for balances.
//!
//! It applies every record to the shared [`Ledger`](cashflow_shared::Ledger), which computes
//! balances itself and flags a producer whose `new_balance` disagrees. An offset is stored only
//! after its record is applied, and auto-commit commits only stored offsets, so a restart
//! resumes at or before the first unapplied record (at-least-once); the ledger skips what it
//! already applied (by partition offset and by transaction id), so nothing counts twice.
//! A final synchronous commit runs at shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cashflow_shared::ledger::Position;
use cashflow_shared::{Outcome, Transaction};
use rdkafka::message::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Settings;
use crate::kafka::{RateLimitedLog, consume};
use crate::state::Shared;

pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    ready: watch::Receiver<bool>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut mismatch_log = RateLimitedLog::new(5);
    let mut malformed_log = RateLimitedLog::new(5);
    let role = ("balance", "balance calculator");
    consume(&settings, &brokers, &shared.clone(), ready, token, role, |msg| {
        let pos = Position { partition: msg.partition(), offset: msg.offset() };
        match Transaction::parse(msg.payload().unwrap_or_default()) {
            Ok(tx) => {
                let outcome = shared.ledger_mut().apply(&tx, Some(pos));
                if let Outcome::Applied { balance, producer_agrees: Some(false), .. } = outcome
                    && mismatch_log.admit().0
                {
                    warn!(account = tx.account, id = %tx.transaction_id, producer = ?tx.new_balance.map(|b| b.to_string()),
                          computed = %balance, "producer's new_balance disagrees with the ledger");
                }
            }
            Err(e) => {
                // Skipped, never applied: counted once even if the record is re-delivered.
                let first_time = shared.ledger_mut().skip(pos);
                if first_time {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                }
                if first_time && malformed_log.admit().0 {
                    warn!(partition = pos.partition, offset = pos.offset, "malformed record skipped: {e}");
                }
            }
        }
    })
    .await
}
