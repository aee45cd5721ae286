//! The balance calculator as a consumer group of 1…N members inside this server, each its own
//! Kafka consumer in `<prefix>-balance` applying to the one ledger. The presenter adds or
//! removes a member and the broker really rebalances; the members' rebalance callbacks feed
//! the timeline ([`cashflow_shared::group`]). Pausing stops every member's fetching while they
//! stay in the group.
//!
//! A partition moves between members only after its old owner committed what it handled (see
//! [`Context`](crate::kafka::Context)'s `pre_rebalance`), and the ledger skips by position what
//! it holds, so balances stay exact through any number of rebalances.

use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Settings;
use crate::pipeline::balance_consumer::{self, FaultPoints};
use crate::state::group::GroupWriter;
use crate::state::{RestoredView, Shared};
use crate::supervise::supervise;

struct Member {
    number: u32,
    token: CancellationToken,
    task: JoinHandle<()>,
}

/// Why a member was not added or removed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("the group already has {0} members, one per partition: another would get none")]
    Full(usize),
    #[error("the calculator keeps at least one member")]
    LastMember,
}

pub struct CalculatorGroup {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    /// The group as the page shows it: written here and, each its own rows, by the members.
    group: Arc<GroupWriter>,
    ready: watch::Receiver<bool>,
    restored: RestoredView,
    tracker: TaskTracker,
    /// The consumers' token: members stop with the other consumers at shutdown.
    parent: CancellationToken,
    members: Mutex<Vec<Member>>,
    /// Set once member 1 restored the ledger; the other members wait for it.
    restore_done: watch::Sender<bool>,
    /// The test fault points, shared by the members and kept across their restarts.
    faults: Arc<FaultPoints>,
}

impl CalculatorGroup {
    pub fn new(
        (settings, brokers, shared): (Settings, String, Arc<Shared>),
        group: GroupWriter,
        ready: watch::Receiver<bool>,
        restored: RestoredView,
        tracker: TaskTracker,
        parent: CancellationToken,
    ) -> CalculatorGroup {
        CalculatorGroup {
            faults: Arc::new(FaultPoints::new(&settings)),
            settings,
            brokers,
            shared,
            group: Arc::new(group),
            ready,
            restored,
            tracker,
            parent,
            members: Mutex::new(Vec::new()),
            restore_done: watch::Sender::new(false),
        }
    }

    /// Most members: one per partition (more would sit idle).
    fn max_members(&self) -> usize {
        let p = self.shared.health().broker().partitions;
        if p > 0 {
            p as usize
        } else {
            self.settings.partitions.max(1) as usize
        }
    }

    fn spawn(&self, number: u32) -> Member {
        let token = self.parent.child_token();
        let writer = self.group.member(number);
        let (s, b, sh, r, v, t, d, f) = (
            self.settings.clone(),
            self.brokers.clone(),
            self.shared.clone(),
            self.ready.clone(),
            self.restored.clone(),
            token.clone(),
            self.restore_done.clone(),
            self.faults.clone(),
        );
        let name = if number == 1 {
            "balance calculator".to_owned()
        } else {
            format!("balance calculator member {number}")
        };
        let task = supervise(
            &self.tracker,
            self.shared.clone(),
            name,
            token.clone(),
            move || {
                balance_consumer::run(
                    s.clone(),
                    b.clone(),
                    sh.clone(),
                    r.clone(),
                    t.clone(),
                    v.clone(),
                    writer.clone(),
                    d.clone(),
                    f.clone(),
                )
            },
        );
        Member {
            number,
            token,
            task,
        }
    }

    /// Starts one more member (the lowest free number); the group rebalances.
    pub async fn add(&self) -> Result<u32, GroupError> {
        let mut members = self.members.lock().await;
        self.add_locked(&mut members)
    }

    fn add_locked(&self, members: &mut Vec<Member>) -> Result<u32, GroupError> {
        if members.len() >= self.max_members() {
            return Err(GroupError::Full(members.len()));
        }
        let number = (1..)
            .find(|n| !members.iter().any(|m| m.number == *n))
            .unwrap_or(1);
        let cause = if number == 1 {
            "calculator started".to_owned()
        } else {
            format!("member {number} added")
        };
        self.group.joined(number, &cause);
        info!(member = number, "balance calculator member added");
        members.push(self.spawn(number));
        Ok(number)
    }

    /// Stops the newest member (it commits and leaves the group, which rebalances); the first
    /// member stays. The members' lock is held until it has stopped, so a concurrent add
    /// cannot take its number while it leaves.
    pub async fn remove(&self) -> Result<u32, GroupError> {
        let mut members = self.members.lock().await;
        if members.len() <= 1 {
            return Err(GroupError::LastMember);
        }
        members.sort_by_key(|m| m.number);
        let Some(m) = members.pop() else {
            return Err(GroupError::LastMember);
        };
        let number = m.number;
        self.stop(m, &format!("member {number} removed")).await;
        Ok(number)
    }

    async fn stop(&self, m: Member, cause: &str) {
        self.group.expect(cause);
        m.token.cancel();
        let _ = m.task.await;
        self.group.left(m.number, cause);
        info!(member = m.number, "balance calculator member stopped");
    }

    /// Stops every member (each commits its offsets), e.g. at shutdown.
    pub async fn stop_all(&self) {
        let mut members = self.members.lock().await;
        self.stop_all_locked(&mut members).await;
    }

    async fn stop_all_locked(&self, members: &mut Vec<Member>) {
        for m in std::mem::take(members).into_iter().rev() {
            self.stop(m, "calculator stopped").await;
        }
    }

    /// Stops every member and starts one again, which restores the state afresh and resumes
    /// from the committed offsets (all under the members' lock: nothing starts in between).
    pub async fn restart(&self) {
        let mut members = self.members.lock().await;
        self.stop_all_locked(&mut members).await;
        self.restore_done.send_replace(false);
        let _ = self.add_locked(&mut members);
    }

    /// Stops (or resumes) fetching on every member; they stay in the group.
    pub fn set_paused(&self, paused: bool) {
        info!(paused, "balance calculator fetching");
        self.group.set_paused(paused);
    }
}
