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
use nisshi_broker::coordinator::group::administrator::GroupCoordinatorConfig;
use tokio::task::JoinHandle;
use tracing::{error, info};

pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
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
    pub async fn start(wanted: SocketAddr, data: Option<PathBuf>) -> anyhow::Result<EmbeddedBroker> {
        let (dir, path) = match data {
            Some(p) => {
                std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
                (None, p)
            }
            None => {
                let d = tempfile::Builder::new().prefix("cashflow-broker-").tempdir()?;
                let p = d.path().to_owned();
                (Some(d), p)
            }
        };
        let addr = pick_addr(wanted)?;
        let url = url::Url::parse(&format!("tcp://{addr}"))?;
        let storage = url::Url::parse(&format!("sqlite://{}", path.join("broker.db").display()))?;
        let broker = Broker::builder()
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
            .await
            .map_err(|e| anyhow::anyhow!("embedded broker: {e:?}"))?;
        let task = tokio::spawn(async move {
            let mut broker = broker;
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                error!("embedded broker stopped: {e:?}");
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if task.is_finished() || tokio::time::Instant::now() > deadline {
                task.abort();
                anyhow::bail!("embedded broker did not start listening on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(%addr, storage = %path.display(), "embedded Kafka broker listening");
        Ok(EmbeddedBroker { addr, task, _dir: dir })
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
