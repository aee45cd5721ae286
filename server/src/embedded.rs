//! The zero-setup broker: nisshi (a Kafka-protocol broker written in Rust) in-process, on
//! loopback, storing its log in SQLite. The rdkafka clients talk to it over TCP exactly as
//! they would to Apache Kafka, and so can any other Kafka client (librdkafka >= 2.3).
//!
//! What it lacks compared with Apache Kafka (measured): transactions, CreatePartitions,
//! auto-creating topics from a consumer's metadata request. cashflow needs none of them.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use nisshi_broker::broker::Broker;
use nisshi_broker::coordinator::group::administrator::{Controller, GroupCoordinatorConfig};
use nisshi_storage::ArcDynStorage;
use tokio::sync::oneshot;
use tracing::{error, info};

pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    /// Its SQLite URL (the same file across an outage).
    storage: url::Url,
    /// The running broker's thread and its stop signal; `None` during an outage.
    running: tokio::sync::Mutex<Option<Running>>,
    _dir: Option<tempfile::TempDir>,
    /// Held (locked) while the broker runs: one broker per data folder.
    _lock: Option<std::fs::File>,
}

struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Another process's embedded broker uses the data folder: two brokers on one SQLite file
/// would both accept writes and disagree.
#[derive(Debug, thiserror::Error)]
#[error(
    "another cashflow is running with the data folder {0} (its embedded broker holds it); stop \
     it, or start this one with another --data-dir, --ephemeral, or --brokers pointing at its broker"
)]
pub struct DataDirInUse(pub PathBuf);

/// Locks `dir` for this process (released when the file is closed, also by a crash).
fn lock_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .with_context(|| format!("cannot open {}", dir.join("LOCK").display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirInUse(dir.to_owned()).into()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", dir.display()))
        }
    }
}

/// `wanted`, or a free port on the same address when it is taken.
fn pick_addr(wanted: SocketAddr) -> anyhow::Result<SocketAddr> {
    match TcpListener::bind(wanted) {
        Ok(l) => Ok(l.local_addr()?),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let l = TcpListener::bind(SocketAddr::new(wanted.ip(), 0))?;
            let addr = l.local_addr()?;
            info!(wanted = %wanted, using = %addr, "port taken; embedded broker uses the next free one");
            Ok(addr)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {wanted}")),
    }
}

impl EmbeddedBroker {
    /// Starts the broker and waits until it accepts connections. `data` is the folder of its
    /// SQLite file; `None` uses a temporary folder removed on drop.
    pub async fn start(
        wanted: SocketAddr,
        data: Option<PathBuf>,
    ) -> anyhow::Result<EmbeddedBroker> {
        let mut lock = None;
        let (dir, path) = match data {
            Some(p) => {
                std::fs::create_dir_all(&p)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                lock = Some(lock_dir(&p)?);
                (None, p)
            }
            None => {
                let d = tempfile::Builder::new()
                    .prefix("cashflow-broker-")
                    .tempdir()?;
                let p = d.path().to_owned();
                (Some(d), p)
            }
        };
        let addr = pick_addr(wanted)?;
        // nisshi resolves the URL path against the working directory after dropping one leading
        // "/"; an extra "/" keeps an absolute path absolute.
        // Maintenance (retention, compaction) every 30 s instead of nisshi's 10 min, so the
        // demo's disk stays near its bound.
        let storage = url::Url::parse(&format!(
            "sqlite:///{}?maintenance_interval=30s",
            path.join("broker.db").display()
        ))?;
        let running = launch(addr, storage.clone()).await?;
        info!(%addr, storage = %path.display(), "embedded Kafka broker listening");
        Ok(EmbeddedBroker {
            addr,
            storage,
            running: tokio::sync::Mutex::new(Some(running)),
            _dir: dir,
            _lock: lock,
        })
    }

    /// Whether it is serving (false during an outage).
    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Stops serving (an outage): connections drop, the data stays. False if it was stopped.
    pub async fn pause(&self) -> bool {
        let Some(r) = self.running.lock().await.take() else {
            return false;
        };
        r.halt().await;
        info!(addr = %self.addr, "embedded Kafka broker stopped (outage)");
        true
    }

    /// Serves again on the same address, from the same data, after [`pause`](Self::pause).
    pub async fn resume(&self) -> anyhow::Result<()> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            *running = Some(launch(self.addr, self.storage.clone()).await?);
            info!(addr = %self.addr, "embedded Kafka broker listening again");
        }
        Ok(())
    }

    pub async fn stop(self) {
        if let Some(r) = self.running.lock().await.take() {
            r.halt().await;
        }
    }
}

impl Running {
    async fn halt(self) {
        let _ = self.stop.send(());
        let t = self.thread;
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
}

/// Starts the broker on `addr` and waits until it accepts connections.
async fn launch(addr: SocketAddr, storage: url::Url) -> anyhow::Result<Running> {
    let url = url::Url::parse(&format!("tcp://{addr}"))?;
    // The broker gets its own thread and runtime: the clients make blocking librdkafka
    // calls (commit, close) that must never starve the broker they are waiting for.
    let (started_tx, started_rx) = oneshot::channel::<anyhow::Result<()>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("broker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = started_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let built = Broker::<Controller<ArcDynStorage>, ArcDynStorage>::builder()
                    .node_id(nisshi_broker::NODE_ID)
                    .cluster_id("cashflow")
                    .incarnation_id(uuid::Uuid::from_bytes(rand::random()))
                    .advertised_listener(url.clone())
                    .listener(url)
                    .storage(storage)
                    .silent(true)
                    // One member per group here: no need to wait 3 s for others to join.
                    .group_coordinator(GroupCoordinatorConfig {
                        initial_rebalance_delay: Duration::from_millis(200),
                        ..GroupCoordinatorConfig::default()
                    })
                    .build()
                    .await;
                let mut broker = match built {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = started_tx.send(Err(anyhow::anyhow!("embedded broker: {e:?}")));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(()));
                tokio::select! {
                    r = broker.serve(tokio::time::Instant::now()) => if let Err(e) = r {
                        error!("embedded broker stopped: {e:?}");
                    },
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
    started_rx
        .await
        .map_err(|_| anyhow::anyhow!("embedded broker thread died"))??;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if thread.is_finished() || tokio::time::Instant::now() > deadline {
            let _ = stop_tx.send(());
            anyhow::bail!("embedded broker did not start listening on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Running {
        stop: stop_tx,
        thread,
    })
}
