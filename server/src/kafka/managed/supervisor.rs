//! Each node's supervisor thread: it spawns the node's JVM (so that `PR_SET_PDEATHSIG` is tied
//! to a thread that lives as long as the node), answers pause and resume, starts the node again
//! when it dies unasked, and stops it when the broker is stopped or dropped.

use std::net::SocketAddr;
use std::process::Child;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashflow_shared::outage::{LocalNode, NodeState};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::node::Node;
use super::{ManagedError, NodeError};

/// How long a stopping broker gets after SIGTERM before SIGKILL.
pub(super) const STOP_WITHIN: Duration = Duration::from_secs(20);
/// How often the supervisor looks at its child.
pub(super) const LOOK_EVERY: Duration = Duration::from_millis(250);

/// One node's supervisor, as the rest of cashflow sees it.
pub(super) struct NodeHandle {
    pub(super) addr: SocketAddr,
    pub(super) commands: mpsc::Sender<Command_>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
    /// Written by the supervisor thread alone.
    pub(super) status: Arc<Mutex<Status>>,
}

/// What a node's supervisor publishes.
#[derive(Clone, Default)]
pub(super) struct Status {
    pub(super) node: LocalNode,
    pub(super) pid: Option<u32>,
}

pub(super) enum Command_ {
    /// Stop it and keep it stopped; answers whether it was running.
    Pause(oneshot::Sender<bool>),
    /// Start it again after a pause, answering once it serves clients.
    Resume(oneshot::Sender<Result<(), ManagedError>>),
}

impl NodeHandle {
    pub(super) fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) async fn pause(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command_::Pause(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    pub(super) async fn resume(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command_::Resume(tx))
            .map_err(|_| NodeError::SupervisorGone)?;
        rx.await
            .map_err(|_| NodeError::SupervisorGone)?
            .map_err(NodeError::from)
    }
}

/// A node's supervisor thread: starts its JVM, answers pause/resume, starts it again when it
/// dies unasked, and stops it when the [`ManagedBroker`] is dropped or stopped.
pub(super) fn supervise(
    node: Node,
    commands: mpsc::Receiver<Command_>,
    started: oneshot::Sender<Result<(), ManagedError>>,
    status: Arc<Mutex<Status>>,
) {
    let publish =
        |f: &dyn Fn(&mut Status)| f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
    // Starts the JVM, publishing its state and how long it took.
    let launch = |restarting: bool| {
        publish(&|s| {
            s.node.state = if restarting {
                NodeState::Restarting
            } else {
                NodeState::Starting
            }
        });
        let t = Instant::now();
        let r = node.start();
        let ms = t.elapsed().as_millis() as u64;
        publish(&|s| match &r {
            Ok(c) => {
                s.pid = Some(c.id());
                s.node.state = NodeState::Running;
                s.node.start_ms = ms;
            }
            Err(_) => s.node.state = NodeState::Restarting,
        });
        r
    };
    let mut child = match launch(false) {
        Ok(c) => {
            let _ = started.send(Ok(()));
            Some(c)
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut paused = false;
    // A broker that keeps dying is started again less and less often (up to every 30 s).
    let mut backoff = Duration::ZERO;
    let mut retry_at: Option<Instant> = None;
    loop {
        match commands.recv_timeout(LOOK_EVERY) {
            Ok(Command_::Pause(reply)) => {
                paused = true;
                retry_at = None;
                let was = child.take().map(|mut c| stop_child(&mut c)).is_some();
                publish(&|s| {
                    s.pid = None;
                    s.node.state = NodeState::Stopped;
                });
                let _ = reply.send(was);
            }
            Ok(Command_::Resume(reply)) => {
                paused = false;
                let r = match child {
                    Some(_) => Ok(()),
                    None => launch(false).map(|c| child = Some(c)),
                };
                if r.is_err() {
                    // Not paused any more: the supervisor keeps trying, as after a crash.
                    backoff = Duration::from_secs(1);
                    retry_at = Some(Instant::now() + backoff);
                }
                let _ = reply.send(r);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(mut c) = child.take() {
                    stop_child(&mut c);
                }
                publish(&|s| {
                    s.pid = None;
                    s.node.state = NodeState::Stopped;
                });
                info!(node = node.id, "Apache Kafka node stopped");
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if paused {
            continue;
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            warn!(node = node.id, %status, "the Apache Kafka broker exited unasked; starting it again");
            child = None;
            publish(&|s| {
                s.pid = None;
                s.node.state = NodeState::Restarting;
            });
            retry_at = Some(Instant::now() + backoff);
        }
        if child.is_none() && retry_at.is_some_and(|t| Instant::now() >= t) {
            match launch(true) {
                Ok(c) => {
                    publish(&|s| s.node.restarts += 1);
                    info!(node = node.id, "Apache Kafka broker running again");
                    child = Some(c);
                    retry_at = None;
                    backoff = Duration::ZERO;
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    warn!(
                        node = node.id,
                        "the Apache Kafka broker did not start again (next try in {backoff:?}): {e}"
                    );
                    retry_at = Some(Instant::now() + backoff);
                }
            }
        }
    }
}

/// SIGTERM (Kafka's controlled shutdown), then SIGKILL after [`STOP_WITHIN`]; reaps the child.
pub(super) fn stop_child(child: &mut Child) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals our own child, which has not been reaped (try_wait said so).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let until = Instant::now() + STOP_WITHIN;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    warn!("the Apache Kafka broker did not stop within {STOP_WITHIN:?}: killed");
    let _ = child.kill();
    let _ = child.wait();
    true
}
