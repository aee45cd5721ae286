//! The steps of [`App::start`](super::App::start) that are more than starting a task: what the
//! presenter set last time, the Kafka to use, the lessons, the HTTP handlers' state, and
//! putting back the members and keys of the last run.

use std::sync::Arc;

use cashflow_shared::Ledger;
use cashflow_shared::api::BrokerHealth;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::App;
use crate::config::Settings;
use crate::kafka::managed::{BrokerSetup, ManagedBroker};
use crate::kept::Kept;
use crate::lessons::Lessons;
use crate::state::lessons::Writer;
use crate::state::{Shared, Writers};

/// What the presenter set last time (see [`crate::kept`]), applied to `settings` where no flag
/// says otherwise.
pub(super) fn kept(settings: &mut Settings) -> Option<Kept> {
    let kept = settings
        .data_dir
        .as_deref()
        .filter(|_| settings.explicit.is_some())
        .and_then(crate::kept::load)
        .filter(|k| k.topic == settings.topic)?;
    crate::kept::apply(&kept, settings);
    info!("the presenter's settings of the last run are back (a flag given now wins)");
    Some(kept)
}

/// The Kafka every client uses: `--brokers`, or the Apache Kafka cashflow starts here.
pub(super) async fn kafka(
    settings: &Settings,
) -> anyhow::Result<(String, Option<Arc<ManagedBroker>>)> {
    if let Some(b) = &settings.brokers {
        return Ok((b.clone(), None));
    }
    let m = ManagedBroker::start(BrokerSetup {
        java: settings.java.clone(),
        classpath_file: settings.kafka_classpath.clone(),
        listen: settings.kafka_listen,
        dir: settings.data_dir.clone().map(|d| d.join("kafka")),
        heap_mb: settings.kafka_heap_mb,
        nodes: settings.local_brokers,
    })
    .await?;
    Ok((m.bootstrap(), Some(Arc::new(m))))
}

/// The state every task shares, empty but for the broker's address and the ledger's settings,
/// and the writing halves of its one-writer parts.
pub(super) fn shared(settings: &Settings, brokers: &str) -> (Arc<Shared>, Writers) {
    let (shared, writers) = Shared::new(
        settings.topic.clone(),
        &format!("{}-balance", settings.group_prefix),
        Ledger::with_id_window(settings.opening_balance, settings.id_window),
        BrokerHealth {
            bootstrap_servers: brokers.to_owned(),
            managed: settings.brokers.is_none(),
            ..Default::default()
        },
    );
    if settings.calculator_paused {
        writers.group.set_paused(true);
    }
    (Arc::new(shared), writers)
}

/// The writing halves of the statuses of the lessons with a module: replay, naive, outage.
pub(super) type StatusWriters = (
    Writer<cashflow_shared::replay::ReplayStatus>,
    Writer<cashflow_shared::naive::NaiveStatus>,
    Writer<cashflow_shared::outage::OutageStatus>,
);

/// Every lesson that runs something of its own, each with what it needs and its status's
/// writing half.
pub(super) fn lessons(
    d: &super::tasks::Deps,
    managed: Option<Arc<ManagedBroker>>,
    (replay, naive, outage): StatusWriters,
    tracker: &TaskTracker,
    consumers: &CancellationToken,
) -> Arc<Lessons> {
    use crate::lessons::{naive_calculator::NaiveCalculator, outage::Outages, replay::Replays};
    let (settings, brokers, shared) = (&d.settings, &d.brokers, &d.shared);
    Arc::new(Lessons::new(vec![
        Arc::new(NaiveCalculator::new(
            settings.clone(),
            brokers.clone(),
            shared.clone(),
            naive,
            tracker.clone(),
            consumers.clone(),
        )),
        Arc::new(Replays::new(
            settings.clone(),
            brokers.clone(),
            shared.clone(),
            replay,
            tracker.clone(),
            consumers.clone(),
        )),
        Arc::new(Outages::new(
            managed,
            shared.clone(),
            outage,
            tracker.clone(),
            consumers.clone(),
        )),
    ]))
}

/// Puts back what the presenter had last time beyond the settings: the calculator's extra
/// members and the producer's keys.
pub(super) async fn resume(app: &App, kept: &Kept) {
    for _ in 0..crate::kept::extra_members(kept) {
        if let Err(e) = app.calculator.add().await {
            warn!("a member kept from the last run was not added: {e}");
            break;
        }
    }
    if kept.keys != cashflow_shared::ordering::KeyStrategy::default()
        && let Err(e) = app
            .producer
            .send(cashflow_shared::command::ProducerCommand::SetKeys(
                kept.keys,
            ))
            .await
    {
        warn!("the keys kept from the last run were not set: {e}");
    }
}
