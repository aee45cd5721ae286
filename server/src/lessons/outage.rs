//! The outage lesson ([`cashflow_shared::outage`]): on the presenter's command the managed
//! Apache Kafka broker stops (SIGTERM: Kafka's controlled shutdown) for N seconds and starts again on the same address from the same data. The
//! clients are not told; they find out as they would with any broker: connections refused,
//! the broker watch reports it unreachable, generation is held, and the producer's idempotent
//! retries deliver what was in flight once it is back. The lesson watches the data for the
//! outcome: every send acknowledged (none failed), no record refused as a duplicate, and the
//! invariant holding again; the time from the broker's return to that is the recovery time.

use cashflow_shared::command::{LessonCommand, OutageCommand};
use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use futures_util::future::BoxFuture;

use crate::lessons::LessonError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashflow_shared::invariant::InvariantState;
use cashflow_shared::outage::{OutageState, OutageStatus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::state::Shared;
use crate::state::lessons::Writer;

/// How long recovery may take before the lesson says it did not recover.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);
const EVERY: Duration = Duration::from_millis(100);

type Managed = Arc<crate::kafka::managed::ManagedBroker>;

pub struct Outages {
    broker: Option<Managed>,
    shared: Arc<Shared>,
    /// The lesson's status: written here, by its runs and by the nodes' mirror, nowhere else.
    status: Arc<Writer<OutageStatus>>,
    tracker: TaskTracker,
    token: CancellationToken,
    /// Held while an outage is being started, so two cannot start at once.
    starting: Mutex<()>,
}

use crate::state::producer::Counts;

/// The producer's counts the lesson follows.
fn counts(shared: &Shared) -> Counts {
    shared.producer().counts()
}

impl Outages {
    pub fn new(
        broker: Option<Managed>,
        shared: Arc<Shared>,
        status: Writer<OutageStatus>,
        tracker: TaskTracker,
        token: CancellationToken,
    ) -> Self {
        let status = Arc::new(status);
        if let Some(b) = broker.clone() {
            tracker.spawn(mirror_nodes(b, status.clone(), token.clone()));
        }
        Outages {
            broker,
            shared,
            status,
            tracker,
            token,
            starting: Mutex::new(()),
        }
    }

    /// Stops the managed broker for `seconds`, unless an outage is under way.
    pub fn start(&self, seconds: u32) -> Result<OutageStatus, LessonError> {
        let _one = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let broker = self.managed()?;
        let status = OutageStatus {
            state: OutageState::Down,
            seconds,
            started_ms: crate::state::now_ms(),
            nodes: broker.nodes(),
            ..OutageStatus::default()
        };
        self.status.set(status.clone());
        let (shared, st, token) = (self.shared.clone(), self.status.clone(), self.token.clone());
        self.tracker.spawn(async move {
            if let Err(e) = run(broker, &shared, &st, seconds, token).await {
                warn!("outage lesson: {e:#}");
                st.update(|o| {
                    o.state = OutageState::Failed;
                    o.note = format!("{e:#}");
                });
            }
        });
        Ok(status)
    }

    /// Stops node `node` of the cluster cashflow runs (the replication lesson), unless that
    /// would leave two of three down or an outage is under way.
    pub async fn stop_node(&self, node: u8) -> Result<OutageStatus, LessonError> {
        let broker = self.managed()?;
        broker.stop_node(node).await?;
        info!(node, "replication lesson: node stopped");
        Ok(self.mirror(&broker))
    }

    /// Starts node `node` again, once it serves clients.
    pub async fn start_node(&self, node: u8) -> Result<OutageStatus, LessonError> {
        let broker = self.managed()?;
        broker.start_node(node).await?;
        info!(node, "replication lesson: node started again");
        Ok(self.mirror(&broker))
    }

    /// The broker cashflow runs, unless the server is stopping, uses `--brokers`, or an
    /// outage is under way.
    fn managed(&self) -> Result<Managed, LessonError> {
        if self.token.is_cancelled() {
            return Err(LessonError::Stopping);
        }
        let Some(broker) = self.broker.clone() else {
            return Err(LessonError::NotManaged);
        };
        if !self.status.get().finished() {
            return Err(LessonError::OutageUnderWay);
        }
        Ok(broker)
    }

    fn mirror(&self, broker: &Managed) -> OutageStatus {
        let nodes = broker.nodes();
        self.status.update(|o| {
            if o.nodes != nodes {
                o.nodes = nodes;
            }
            o.clone()
        })
    }
}

/// Keeps the nodes in the lesson's status as the supervisors see them (a node that died, one
/// starting again), four times a second; the status changes only when they do.
async fn mirror_nodes(
    broker: Managed,
    status: Arc<Writer<OutageStatus>>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let nodes = broker.nodes();
        if status.get().nodes != nodes {
            status.update(|o| o.nodes = nodes);
        }
    }
}

async fn run(
    broker: Managed,
    shared: &Shared,
    status: &Writer<OutageStatus>,
    seconds: u32,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let before = counts(shared);
    let duplicates_before = shared.ledger().stats().duplicate_ids;
    anyhow::ensure!(broker.pause().await, "the broker was stopped already");
    info!(seconds, "outage lesson: broker stopped");
    let until = Instant::now() + Duration::from_secs(seconds.into());
    let mut tick = tokio::time::interval(EVERY);
    while Instant::now() < until && !token.is_cancelled() {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = tick.tick() => {}
        }
        let held = counts(shared).held;
        if held && !status.get().held {
            status.update(|o| o.held = true);
        }
    }
    // Started again even at shutdown: the consumers' final commits need it.
    let starting = Instant::now();
    broker.resume().await?;
    let start_ms = starting.elapsed().as_millis() as u64;
    let back = Instant::now();
    let at_back = counts(shared);
    status.update(|o| {
        o.state = OutageState::Recovering;
        o.start_ms = start_ms;
        o.back_ms = crate::state::now_ms();
        o.in_flight_at_back = at_back
            .sent
            .saturating_sub(at_back.delivered + at_back.failed);
    });
    info!(
        in_flight = at_back
            .sent
            .saturating_sub(at_back.delivered + at_back.failed),
        "outage lesson: broker back"
    );
    // Acknowledged records of this producer once the backlog drained: the calculator must
    // apply that many for the outage to be over.
    let mut target: Option<u64> = None;
    while !token.is_cancelled() {
        tick.tick().await;
        let now = counts(shared);
        let duplicates = shared
            .ledger()
            .stats()
            .duplicate_ids
            .saturating_sub(duplicates_before);
        let failed = now.failed.saturating_sub(before.failed);
        let invariant = shared.invariant();
        // Recovered: what was waiting when the broker came back is acknowledged, generation
        // goes on, and the calculator applied every transaction acknowledged by then, each
        // once (under load the invariant is "catching up" most of the time, never broken).
        if target.is_none() && now.delivered + now.failed >= at_back.sent && !now.held {
            target = Some(invariant.acked);
        }
        let broken = invariant.state == InvariantState::Broken;
        let done = target.is_some_and(|t| invariant.applied >= t) && !broken;
        status.update(|o| {
            o.delivered_since = now.delivered.saturating_sub(before.delivered);
            o.failed = failed;
            o.duplicates = duplicates;
            if done {
                o.recovery_ms = back.elapsed().as_millis() as u64;
                if failed == 0 && duplicates == 0 {
                    o.state = OutageState::Recovered;
                } else {
                    o.state = OutageState::Failed;
                    o.note = format!(
                        "after the outage {failed} transactions were lost and {duplicates} written twice"
                    );
                }
            } else if back.elapsed() > RECOVERY_LIMIT {
                o.state = OutageState::Failed;
                o.note = if broken {
                    format!("the invariant is broken: {}", invariant.describe())
                } else {
                    format!(
                        "not recovered {} s after the broker came back",
                        RECOVERY_LIMIT.as_secs()
                    )
                };
            }
        });
        if status.get().finished() {
            break;
        }
    }
    let o = status.get();
    info!(state = ?o.state, recovery_ms = o.recovery_ms, "outage lesson over");
    Ok(())
}

impl crate::lessons::Lesson for Outages {
    fn id(&self) -> cashflow_shared::lessons::LessonId {
        cashflow_shared::lessons::LessonId::Outage
    }

    fn takes(&self, command: &LessonCommand) -> bool {
        matches!(command, LessonCommand::Outage(_))
    }

    fn command(&self, id: Option<u64>, command: LessonCommand) -> BoxFuture<'_, ServerMsg> {
        Box::pin(async move {
            let LessonCommand::Outage(command) = command else {
                // (`takes` lets only its own through: any other gets the outage as it is.)
                let outage = self.status.get();
                return ServerMsg::Outage { id, outage };
            };
            let done = match command {
                OutageCommand::StopBroker { seconds } => self.start(seconds),
                OutageCommand::StopNode(node) => self.stop_node(node).await,
                OutageCommand::StartNode(node) => self.start_node(node).await,
            };
            crate::lessons::reply(id, done, |id, outage| ServerMsg::Outage { id, outage })
        })
    }

    fn show(&self, snapshot: &mut Snapshot) {
        snapshot.outage = self.status.get();
    }

    fn changes(&self, seen: &mut u64, delta: &mut Delta) {
        delta.outage = self.shared.lessons().outage().changed_since(seen);
    }

    fn holds_reset(&self) -> Option<LessonError> {
        (!self.status.get().finished()).then_some(LessonError::OutageUnderWay)
    }

    fn forget(&self) {
        self.status.set(Default::default());
    }
}
