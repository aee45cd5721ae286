//! The logging consumer (group `<prefix>-logger`): logs every transaction readably, like the
//! original's logging consumer, and keeps the newest in a bounded feed for the page and API.
//! At high rates the terminal gets at most 50 lines a second plus a count of the rest; the
//! feed still receives every record.

use std::sync::Arc;

use cashflow_shared::Transaction;
use cashflow_shared::api::LogLine;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Settings;
use crate::pipeline::consume::{Handler, RateLimitedLog, Role, Verdict, consume};
use crate::state::feed::LineWriter;
use crate::state::{RECENT_CAPACITY, Shared};

pub fn describe(msg: &BorrowedMessage<'_>) -> LogLine {
    let text = match msg.payload().map(Transaction::parse) {
        Some(Ok(tx)) => {
            let balance = tx
                .new_balance
                .map(|b| format!(", new balance {b}"))
                .unwrap_or_default();
            let count = tx
                .producer_count()
                .map(|c| format!(", transaction #{c}"))
                .unwrap_or_default();
            format!(
                "account {}: {} {}{balance}{count} ({})",
                tx.account, tx.transaction_type, tx.amount, tx.transaction_id
            )
        }
        Some(Err(e)) => format!("skipped a malformed record: {e}"),
        None => "skipped an empty record".to_owned(),
    };
    LogLine {
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp_ms: msg.timestamp().to_millis(),
        text,
    }
}

pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    feed: Arc<LineWriter>,
    ready: watch::Receiver<bool>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let role = Role {
        group_suffix: "logger",
        member: None,
        name: "logging consumer",
    };
    let logger = Logger {
        feed,
        lines: RateLimitedLog::new(50),
        unseen: 0,
    };
    consume(
        (&settings, &brokers, &shared),
        role,
        ready,
        token,
        None,
        logger,
    )
    .await
}

/// Logs each transaction (at most 50 lines a second) and keeps the page's feed.
struct Logger {
    /// The feed's recent lines: this consumer writes them, and nothing else does.
    feed: Arc<LineWriter>,
    lines: RateLimitedLog,
    /// Records of the current batch that newer ones of the same batch push out of the feed
    /// before anyone could read it: counted, not described.
    unseen: usize,
}

impl Handler for Logger {
    fn batch(&mut self, records: usize, _now_ms: i64) {
        self.unseen = records.saturating_sub(RECENT_CAPACITY);
    }

    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Verdict {
        if self.unseen > 0 {
            self.unseen -= 1;
            self.lines.held_back(1);
            self.feed.skip();
            return Verdict::Done;
        }
        let line = describe(msg);
        let (show, held) = self.lines.admit();
        if let Some(n) = held {
            info!(target: "cashflow::transactions", "… and {n} more transactions in the last second");
        }
        if show {
            info!(target: "cashflow::transactions", "p{}@{} {}", line.partition, line.offset, line.text);
        }
        self.feed.push(line);
        Verdict::Done
    }
}
