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
use crate::kafka::{DeadLetter, DeadLetters, RateLimitedLog, consume};
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
    let dead_letters = DeadLetters::new(&settings, &brokers, &shared)?;
    let handler_shared = shared.clone();
    consume(&settings, &brokers, &shared, ready, token, role, Some(dead_letters), move |msg| {
        let shared = &handler_shared;
        let pos = Position { partition: msg.partition(), offset: msg.offset() };
        if shared.ledger().has_seen(pos) {
            return Ok(()); // re-delivered after a restart: already applied or dead-lettered
        }
        let reason = match Transaction::parse(msg.payload().unwrap_or_default()) {
            Ok(tx) => match shared.ledger_mut().apply(&tx, Some(pos)) {
                Outcome::Applied { balance, producer_agrees: Some(false), .. } => {
                    if mismatch_log.admit().0 {
                        warn!(account = tx.account, id = %tx.transaction_id, producer = ?tx.new_balance.map(|b| b.to_string()),
                              computed = %balance, "producer's new_balance disagrees with the ledger");
                    }
                    return Ok(());
                }
                Outcome::Applied { .. } | Outcome::Replayed => return Ok(()),
                Outcome::DuplicateId => format!("duplicate transaction_id {:?}", tx.transaction_id),
                Outcome::Overflow => format!("balance of account {} would overflow", tx.account),
            },
            Err(e) => e.to_string(),
        };
        if malformed_log.admit().0 {
            warn!(partition = pos.partition, offset = pos.offset, "record sent to the dead-letter topic: {reason}");
        }
        let shared = shared.clone();
        Err(DeadLetter {
            reason,
            on_written: Box::new(move || {
                // Counted, and its position marked handled, only once it is safely kept.
                if shared.ledger_mut().skip(pos) {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }),
        })
    })
    .await
}
