//! The topic as the broker sees it, for `GET /api/topic` (and, next, the page): each
//! partition's log start and end offsets and records/s in, and every consumer group reading the
//! topic — cashflow's own and foreign ones — with its state, members and their partitions,
//! committed offsets and lag. Asked of the broker about once a second; the task owns the view
//! and publishes it through a `watch`, so readers never wait on the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::api::TopicView;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::state::Shared;

mod asker;
mod groups;

use asker::Asker;

const EVERY: Duration = Duration::from_secs(1);
/// How often the view is refreshed while nobody watches it (no page open, no one reading
/// `/api/topic` or `/metrics`): an idle demo asks the broker little.
const UNWATCHED_EVERY: Duration = Duration::from_secs(5);
/// A reader of `/api/topic` or `/metrics` keeps the view fresh this long.
const ASKED_HOLDS: Duration = Duration::from_secs(10);
/// Up to this many groups on the broker, each refresh lists and describes them all in two
/// requests (fewer than describing the known ones one by one).
const LIST_ALL_UP_TO: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(3);
/// Unknown groups asked about per refresh, and how long an answer "not on this topic" holds.
const PROBES: usize = 4;
const PROBE_AGAIN: Duration = Duration::from_secs(15);
/// How often every group on the broker is listed (new groups appear within this).
const LIST_EVERY: Duration = Duration::from_secs(5);

/// The view's readers' end.
pub type TopicViews = watch::Receiver<Arc<TopicView>>;

/// Whether anyone watches the view: the page's viewers (counted by the hub), or a reader of
/// `/api/topic` or `/metrics` lately. Unwatched, it is refreshed every `UNWATCHED_EVERY`.
#[derive(Clone)]
pub struct Demand {
    viewers: Arc<dyn Fn() -> usize + Send + Sync>,
    /// When the view was last read over HTTP (ms since the epoch).
    asked_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl Demand {
    pub fn new(viewers: impl Fn() -> usize + Send + Sync + 'static) -> Demand {
        Demand {
            viewers: Arc::new(viewers),
            asked_ms: Arc::default(),
        }
    }

    /// Someone read the view over HTTP: keep it fresh for a while.
    pub fn asked(&self) {
        self.asked_ms
            .store(crate::state::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn watched(&self) -> bool {
        let since =
            crate::state::now_ms() - self.asked_ms.load(std::sync::atomic::Ordering::Relaxed);
        (self.viewers)() > 0 || since < ASKED_HOLDS.as_millis() as i64
    }
}

/// Creates the view's channel: the sender for [`run`], the receiver for readers.
pub fn channel() -> (watch::Sender<Arc<TopicView>>, TopicViews) {
    watch::channel(Arc::new(TopicView::default()))
}

/// Asks the broker about once a second until `token` is cancelled, once the topic is `ready`.
pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    mut ready: watch::Receiver<bool>,
    view: watch::Sender<Arc<TopicView>>,
    demand: Demand,
    token: CancellationToken,
) -> anyhow::Result<()> {
    if !crate::kafka::topics::until_ready(&mut ready, &token).await {
        return Ok(());
    }
    let mut asker = Asker::new(settings, brokers, shared)?;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if !demand.watched() && asked.is_some_and(|t| t.elapsed() < UNWATCHED_EVERY) {
            continue;
        }
        asked = Some(Instant::now());
        let (back, result) = tokio::task::spawn_blocking(move || {
            let r = asker.ask();
            (asker, r)
        })
        .await?;
        asker = back;
        match result {
            Ok(mut v) => {
                v.calculator = asker.shared.group().status();
                v.latency = asker.shared.group().latency();
                v.invariant = asker.shared.invariant();
                v.ordering = asker.shared.ledger().ordering();
                v.keys = asker
                    .shared
                    .producer()
                    .generator()
                    .map(|g| g.keys)
                    .unwrap_or_default();
                v.replay = asker.shared.lessons().replay().get();
                v.naive = asker.shared.lessons().naive().get();
                view.send_replace(Arc::new(v));
            }
            Err(e) => view.send_modify(|v| {
                let mut stale = (**v).clone();
                stale.error = Some(e.to_string());
                *v = Arc::new(stale);
            }),
        }
    }
}
