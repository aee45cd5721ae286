//! The logging consumer (group `<prefix>-logger`): logs every transaction readably, like the
//! original's logging consumer, and keeps the newest in a bounded feed for the page and API.
//! At high rates the terminal gets at most 50 lines a second plus a count of the rest; the
//! feed still receives every record.

use std::sync::Arc;
use std::time::Duration;

use cashflow_shared::Transaction;
use cashflow_shared::api::LogLine;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::{Context, RateLimitedLog, consumer_config, is_transient};
use crate::state::Shared;

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
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let group = format!("{}-logger", settings.group_prefix);
    let consumer: StreamConsumer<Context> = consumer_config(&brokers, &settings.kafka, &group)
        .create_with_context(Context {
            shared: shared.clone(),
            role: "logging consumer",
        })?;
    let ready = tokio::select! {
        _ = token.cancelled() => false,
        r = ready.wait_for(|r| *r) => r.is_ok(),
    };
    if !ready {
        return Ok(());
    }
    consumer.subscribe(&[&settings.topic])?;
    info!(%group, topic = %settings.topic, "logging consumer started");
    let mut lines = RateLimitedLog::new(50);
    let mut errors = RateLimitedLog::new(1);
    loop {
        let msg = tokio::select! {
            _ = token.cancelled() => break,
            m = consumer.recv() => m,
        };
        match msg {
            Ok(msg) => {
                let line = describe(&msg);
                let (show, held) = lines.admit();
                if let Some(n) = held {
                    info!(target: "cashflow::transactions", "… and {n} more transactions in the last second");
                }
                if show {
                    info!(target: "cashflow::transactions", "p{}@{} {}", line.partition, line.offset, line.text);
                }
                shared.push_recent(line);
                if let Err(e) = consumer.store_offset_from_message(&msg) {
                    warn!(%e, "logging consumer could not store its offset");
                }
            }
            Err(e) if is_transient(&e) => {
                if errors.admit().0 {
                    warn!(%e, "logging consumer: receive failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    crate::kafka::close_consumer(consumer, "logging consumer").await;
    Ok(())
}
