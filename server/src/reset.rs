//! "Reset the demo": a fresh topic and fresh groups, for the next class, without restarting the
//! server. Generation is paused and what is in flight delivered; the lessons' extra consumers
//! stop (their groups are deleted) and the calculator goes back to one member; the topic and
//! its dead-letter topic are deleted, and the broker watch creates them again, empty; the
//! balances, the invariant and the lessons' checks start afresh, as for a topic re-created by
//! anyone (see `Shared::start_afresh`, after which the producer is created anew: a broker
//! forgets the idempotent producer's state with the topic); generation resumes if it was
//! running.
//!
//! A reset deletes only topics this cashflow created (see [`crate::kafka::created_topics`]), and
//! only when the command names the topic: any client may write to a topic, and a server
//! pointed at someone else's must never empty it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use cashflow_shared::command::ProducerCommand as P;
use cashflow_shared::ordering::KeyStrategy;
use rdkafka::admin::{AdminClient, AdminOptions};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::created_topics::CreatedTopics;
use crate::kafka::ffi::{TopicId, topic_ids};
use crate::kafka::topics::dlq_topic;
use crate::kafka::{ADMIN_ROLE, Context, base_config};
use crate::lessons::Lessons;
use crate::pipeline::calculator_group::CalculatorGroup;
use crate::pipeline::producer::ProducerHandle;
use crate::state::{RestoredView, Shared};

const LIMIT: Duration = Duration::from_secs(60);

/// Why the demo's reset was refused; nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(
        "the reset names topic {named:?}, but this demo's topic is {ours:?}: nothing was deleted"
    )]
    OtherTopic { named: String, ours: String },
    #[error("{0}: reset once it is over")]
    Held(crate::lessons::LessonError),
    #[error("a reset is under way")]
    UnderWay,
    #[error("cannot reach the broker to reset: {0}")]
    Unreachable(String),
    #[error("cannot tell who created the topics, so nothing was deleted: {0}")]
    Unknown(String),
    #[error(
        "reset refused: topic {topic:?} (id {id}) was not created by this cashflow, so it is not deleted (nor is anything else). For a fresh demo start cashflow with another --topic, or delete the topic yourself if it is yours."
    )]
    NotOurs { topic: String, id: String },
}

/// What a reset needs to reach.
pub struct Parts {
    pub settings: Settings,
    pub brokers: String,
    pub shared: Arc<Shared>,
    pub producer: ProducerHandle,
    pub calculator: Arc<CalculatorGroup>,
    pub lessons: Arc<Lessons>,
    pub restored: RestoredView,
    pub tracker: TaskTracker,
    /// The topics this cashflow created: the only ones a reset deletes.
    pub created: Arc<CreatedTopics>,
}

pub struct Reset {
    parts: Arc<Parts>,
    running: Arc<AtomicBool>,
}

impl Reset {
    pub fn new(parts: Parts) -> Reset {
        Reset {
            parts: Arc::new(parts),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts a reset, unless one is under way or a lesson holds it (an outage under way), the command names another
    /// topic than this demo's (the confirmation is checked here, not only on the page), or a
    /// topic it would delete is not one this cashflow created; it goes on in the background.
    pub async fn start(&self, topic: &str) -> Result<(), ResetError> {
        let ours = &self.parts.settings.topic;
        if topic != ours {
            return Err(ResetError::OtherTopic {
                named: topic.to_owned(),
                ours: ours.clone(),
            });
        }
        if let Some(why) = self.parts.lessons.hold_reset() {
            return Err(ResetError::Held(why));
        }
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(ResetError::UnderWay);
        }
        let admin = match self.admin_for_created_topics().await {
            Ok(admin) => admin,
            Err(e) => {
                self.running.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        let (parts, running) = (self.parts.clone(), self.running.clone());
        self.parts.tracker.spawn(async move {
            let was_running = parts
                .shared
                .producer()
                .generator()
                .is_some_and(|g| g.running);
            match run(&parts, admin).await {
                Ok(()) => info!("the demo was reset: a fresh topic and groups"),
                Err(e) => {
                    warn!("the reset failed: {e:#}");
                    if was_running {
                        let _ = parts.producer.send(P::Start).await;
                    }
                    parts
                        .shared
                        .health()
                        .set_error(format!("the reset of the demo failed: {e:#}"));
                }
            }
            parts.shared.store().set_resetting(false);
            running.store(false, Ordering::SeqCst);
        });
        Ok(())
    }

    /// An admin client, once the broker has said that every topic a reset deletes is missing
    /// or one this cashflow created (its id is in the record of created topics).
    async fn admin_for_created_topics(&self) -> Result<Arc<AdminClient<Context>>, ResetError> {
        let p = &self.parts;
        let admin: AdminClient<Context> = base_config(&p.brokers, &p.settings.kafka)
            .create_with_context(Context::new(&p.shared, ADMIN_ROLE))
            .map_err(|e| ResetError::Unreachable(e.to_string()))?;
        let admin = Arc::new(admin);
        ours_to_delete(&admin, p).await?;
        Ok(admin)
    }
}

/// The topics a reset deletes (the topic and its dead-letter topic, those that exist), once the
/// broker has described each as one this cashflow created; an error naming the first that is
/// not. Asked when the reset is asked for, and again just before deleting.
async fn ours_to_delete(
    admin: &Arc<AdminClient<Context>>,
    p: &Parts,
) -> Result<Vec<String>, ResetError> {
    let names = [p.settings.topic.clone(), dlq_topic(&p.settings.topic)];
    let a = admin.clone();
    let ids = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        topic_ids(a.inner().native_client(), &names, Duration::from_secs(10))
    })
    .await
    .map_err(|e| ResetError::Unknown(e.to_string()))?
    .map_err(|e| ResetError::Unknown(e.to_string()))?;
    let mut ours = Vec::new();
    for (name, id) in ids {
        match id {
            TopicId::Id(id) if p.created.created(&name, &id) => ours.push(name),
            TopicId::Id(id) => {
                warn!(topic = %name, id = %id, "reset refused: not a topic this cashflow created");
                return Err(ResetError::NotOurs {
                    topic: name,
                    id: id.to_string(),
                });
            }
            TopicId::Missing => {}
        }
    }
    Ok(ours)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !done() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} not within {} s",
            LIMIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run(p: &Parts, admin: Arc<AdminClient<Context>>) -> anyhow::Result<()> {
    let shared = &p.shared;
    let generator = shared.producer().generator().unwrap_or_default();
    let cmd = |c: P| async move { p.producer.send(c).await.map_err(|e| anyhow::anyhow!("{e}")) };
    cmd(P::Pause).await?;
    until("the producer's deliveries", || {
        shared.producer().counts().in_flight() == 0
    })
    .await?;
    p.lessons.stop();
    // The lessons' runs are forgotten before the topic goes: the checks start over when the
    // re-created topic is noticed, and must not find the old runs then.
    p.lessons.forget();
    p.calculator.set_paused(false);
    while p.calculator.remove().await.is_ok() {}

    let recreated = shared.store().health().recreated;
    // From here until the reset ends, a re-created topic is the presenter's (see
    // `Shared::start_afresh`); cleared in `start` whatever the outcome.
    shared.store().set_resetting(true);
    let had_applied = shared.ledger().next_offsets().values().any(|n| *n > 0);
    // Asked again: someone may have deleted and created a topic of the name since.
    let topics = ours_to_delete(&admin, p)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = match names.is_empty() {
        true => Vec::new(),
        false => admin
            .delete_topics(&names, &opts)
            .await
            .context("deleting the topics")?,
    };
    for r in deleted {
        if let Err((t, e)) = r {
            anyhow::bail!("{t} was not deleted: {e}");
        }
    }
    info!(topics = ?names, "reset: topics deleted");
    // The broker watch creates them again; the fresh topic is empty (generation is paused).
    let (a, t, n) = (admin, p.settings.topic.clone(), p.settings.partitions);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (a, t) = (a.clone(), t.clone());
        let fresh = tokio::task::spawn_blocking(move || -> bool {
            let timeout = Duration::from_secs(2);
            (0..n).all(|p| {
                a.inner()
                    .fetch_watermarks(&t, p, timeout)
                    .is_ok_and(|(lo, hi)| lo == 0 && hi == 0)
            })
        })
        .await?;
        if fresh {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the topic was not created again within {} s",
            LIMIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once something had been applied, the broker watch notices the re-created topic (its
    // partitions end below what was applied) and starts the balances afresh: wait for that,
    // rather than do it here too, since its check may have read the old offsets already and
    // would start afresh a second time, after generation resumed, losing the first records.
    // With nothing applied it has nothing to notice, and it is done here.
    if had_applied {
        until("the re-created topic to be noticed", || {
            shared.store().health().recreated > recreated
        })
        .await?;
    } else {
        shared.start_afresh(&p.restored, "the presenter reset the demo");
    }
    // The presenter asked for it: no warning that the topic was re-created (the page's banner
    // is for someone else's deletion; `start_afresh` counted it as the presenter's), and no
    // stale error.
    shared.store().clear_error();
    shared.health().clear_error();
    // Again (a run stopping may have written its status since), and the checks over once more
    // with them (`start_afresh` did, before this).
    p.lessons.forget();
    shared.lessons().start_checks_over();
    cmd(P::SetKeys(KeyStrategy::ByAccount)).await?;
    cmd(P::SetMaxLag(None)).await?;
    if generator.running {
        cmd(P::Start).await?;
    }
    Ok(())
}
