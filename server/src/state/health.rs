//! The broker's and the tasks' health: what `/health` and the page's badge say.
//!
//! Written by the broker watch ([`crate::kafka::topics`]: reachability, the topic, its partitions),
//! the Kafka clients' error callback ([`crate::kafka`]: the latest error and, for the watch's own
//! client, "all brokers down"), [`crate::supervise`] (tasks down) and the shutdown (stops).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use cashflow_shared::api::BrokerHealth;

use super::lock;

/// Stops remembered (a consumer restarted by its supervisor stops too).
const STOPS_KEPT: usize = 32;

pub struct Health {
    broker: Mutex<BrokerHealth>,
    /// The Kafka clients' latest error, which says why better than the broker watch's failed
    /// request does (e.g. "SASL authentication error" rather than "broker transport failure").
    client_error: Mutex<Option<String>>,
    /// Supervised tasks that stopped and wait to be started again, with the reason.
    tasks_down: Mutex<BTreeMap<String, String>>,
    /// What stopped, in order (the last [`STOPS_KEPT`]).
    stops: Mutex<VecDeque<String>>,
}

impl Health {
    pub fn new(broker: BrokerHealth) -> Health {
        Health {
            broker: Mutex::new(broker),
            client_error: Mutex::new(None),
            tasks_down: Mutex::new(BTreeMap::new()),
            stops: Mutex::new(VecDeque::new()),
        }
    }

    pub fn broker(&self) -> BrokerHealth {
        lock(&self.broker).clone()
    }

    pub fn reachable(&self) -> bool {
        lock(&self.broker).reachable
    }

    /// Partitions of the topic (0 until it is ready).
    pub fn partitions(&self) -> u32 {
        lock(&self.broker).partitions
    }

    /// The broker watch's look: the broker answered (`reachable`), and the topic is ready with
    /// `Ok(partitions)` or why not.
    pub fn checked(&self, reachable: bool, topic: Result<u32, impl std::fmt::Display>) {
        let mut b = lock(&self.broker);
        b.reachable = reachable;
        match topic {
            Ok(partitions) => {
                b.topic_ready = true;
                b.partitions = partitions;
            }
            Err(e) => b.last_error = Some(e.to_string()),
        }
    }

    /// A Kafka client reported `reason`; `all_down` (the watch's own client only) makes the
    /// broker unreachable, and is not kept as the error (it is the consequence, not the cause).
    pub fn client_error(&self, reason: &str, all_down: bool, decides_reachability: bool) {
        if !all_down {
            *lock(&self.client_error) = Some(reason.to_owned());
        }
        let mut b = lock(&self.broker);
        if !all_down {
            b.last_error = Some(reason.to_owned());
        }
        if decides_reachability && all_down {
            b.reachable = false;
        }
    }

    /// The clients' latest error since the last call, if any.
    pub fn take_client_error(&self) -> Option<String> {
        lock(&self.client_error).take()
    }

    /// Something cashflow did failed in a way the page should say (e.g. the demo's reset).
    pub fn set_error(&self, reason: String) {
        lock(&self.broker).last_error = Some(reason);
    }

    pub fn clear_error(&self) {
        lock(&self.broker).last_error = None;
    }

    /// `name` stopped (`Some(reason)`) or runs again (`None`).
    pub fn set_task_down(&self, name: &str, reason: Option<String>) {
        let mut t = lock(&self.tasks_down);
        match reason {
            Some(r) => t.insert(name.to_owned(), r),
            None => t.remove(name),
        };
    }

    pub fn tasks_down(&self) -> BTreeMap<String, String> {
        lock(&self.tasks_down).clone()
    }

    /// A piece of the server stopped (at shutdown): the log of [`stops`](Self::stops).
    pub fn record_stop(&self, what: impl Into<String>) {
        let mut s = lock(&self.stops);
        if s.len() == STOPS_KEPT {
            s.pop_front();
        }
        s.push_back(what.into());
    }

    /// What stopped so far, in order.
    pub fn stops(&self) -> Vec<String> {
        lock(&self.stops).iter().cloned().collect()
    }
}
