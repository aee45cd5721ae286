//! A viewer joining: the snapshot of exactly what the deltas so far add up to, answered by
//! the hub's loop between two deltas, and the deltas from there.

use std::sync::Arc;

use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Hub, Sent};

/// A joined viewer's start: see [`Hub::join`].
pub struct Joined {
    pub snapshot: Arc<str>,
    pub frames: broadcast::Receiver<Arc<str>>,
}

impl Hub {
    /// A new viewer, or one that fell behind: the snapshot of what the deltas so far add up
    /// to, and the deltas from there. Answered by the hub's loop, between two deltas, so none
    /// is missed or seen twice; `None` when the hub has stopped.
    pub async fn join(&self) -> Option<Joined> {
        let (reply, answer) = oneshot::channel();
        self.joins.send(reply).await.ok()?;
        answer.await.ok()
    }

    /// The snapshot of `sent`, with the parts that are read whole every time (they are sent
    /// whole when they change, so reading them fresh cannot leave a viewer behind).
    pub(super) fn snapshot(&self, sent: &Sent) -> ServerMsg {
        let broker = self.shared.health().broker();
        let mut snapshot = Snapshot {
            topic: self.shared.topic().to_owned(),
            opening_balance: self.shared.ledger().opening_balance(),
            accounts: sent.accounts.values().cloned().collect(),
            counters: sent.counters,
            generator: sent.generator.clone().unwrap_or_default(),
            broker_reachable: sent.reachable.unwrap_or(broker.reachable),
            broker_managed: broker.managed,
            log: sent.log.iter().cloned().collect(),
            history: self
                .shared
                .feed()
                .history_upto(sent.sample.as_ref().map_or(0, |(seq, _)| *seq)),
            partitions: sent.partitions.clone(),
            store: sent.store,
            topic_view: sent.topic_view.clone(),
            group: sent.group.clone(),
            flow: self.shared.flow().all(),
            dead_letters: self.shared.feed().dead_letters().0,
            // Each lesson's own status is its to show.
            replay: Default::default(),
            naive: Default::default(),
            outage: Default::default(),
            lessons: self.shared.lessons().checks().get(),
        };
        self.lessons.show(&mut snapshot);
        ServerMsg::Snapshot(Box::new(snapshot))
    }

    /// Answers `first` and every other join waiting now with one snapshot. The parts sent whole
    /// when they change (the generator, the broker's reachability, the store) are brought up
    /// to date first, for every viewer: a new one then never starts from a setting older than
    /// the one in force (the others come within a second; they are not forced here, so joins
    /// cannot make busy frames more frequent).
    pub(super) fn answer_joins(
        &self,
        first: oneshot::Sender<Joined>,
        joins: &mut mpsc::Receiver<oneshot::Sender<Joined>>,
        sent: &mut Sent,
    ) {
        let mut delta = Delta::default();
        self.whole_parts(sent, &mut delta);
        if !delta.is_empty() && self.viewers() > 0 {
            let _ = self
                .frames
                .send(ServerMsg::Delta(Box::new(delta)).to_json().into());
        }
        let snapshot: Arc<str> = self.snapshot(sent).to_json().into();
        let mut waiting = vec![first];
        while let Ok(j) = joins.try_recv() {
            waiting.push(j);
        }
        for reply in waiting {
            let _ = reply.send(Joined {
                snapshot: snapshot.clone(),
                frames: self.frames.subscribe(),
            });
        }
    }
}
