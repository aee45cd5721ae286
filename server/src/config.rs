//! Settings: defaults, overridden by environment variables, overridden by flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use cashflow_shared::Money;
use cashflow_shared::generator::GeneratorSettings;
use clap::Parser;

mod cli;
pub mod properties;

use properties::PropertyError;

pub use cli::{Cli, FlagError};

/// Transactions per second the producer aims for.
pub use cashflow_shared::command::Rate;

fn parse_kv(s: &str) -> Result<(String, String), PropertyError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(PropertyError::NotKeyValue(s.to_owned())),
    }
}

/// The properties of a `--kafka-props-file`: `KEY=VALUE` lines, blank lines and `#` comments.
pub fn parse_props_file(text: &str) -> Result<Vec<(String, String)>, PropertyError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            parse_kv(l).map_err(|_| PropertyError::Line {
                line: i + 1,
                text: l.to_owned(),
            })
        })
        .collect()
}

fn parse_money(s: &str) -> Result<Money, cashflow_shared::money::MoneyError> {
    s.parse::<Money>()
}

/// Everything the app needs to start, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub brokers: Option<String>,
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub listen: SocketAddr,
    pub rate: Rate,
    pub paused: bool,
    /// The balance calculator starts with its fetching paused.
    pub calculator_paused: bool,
    pub generator: GeneratorSettings,
    pub opening_balance: Money,
    pub group_prefix: String,
    pub kafka: Vec<(String, String)>,
    /// The managed broker (used when `brokers` is `None`): its client port, `java`, the file
    /// listing its jars, its heap.
    pub kafka_listen: SocketAddr,
    pub java: PathBuf,
    pub kafka_classpath: PathBuf,
    pub kafka_heap_mb: u32,
    /// Nodes of the managed broker: 1, or 3 (a cluster).
    pub local_brokers: u8,
    /// The data folder (the managed broker's log, the presenter's settings, the token);
    /// `None` is ephemeral.
    pub data_dir: Option<PathBuf>,
    pub web_dir: PathBuf,
    pub allow_origins: Vec<String>,
    pub presenter_token: Option<String>,
    /// Every page commands, beyond loopback too (see [`crate::http::presenter`]).
    pub open_controls: bool,
    /// `Some` where the presenter's settings are kept across restarts (the `cashflow` binary):
    /// which of them the command line or the environment gave, so they win over the kept ones
    /// (see [`crate::kept`]). `None` (tests, an embedding program): the settings are
    /// exactly as given, and nothing is kept.
    pub explicit: Option<Explicit>,
    pub store: StoreSettings,
    /// Retention of the topic when cashflow creates it: milliseconds and bytes per partition
    /// (-1: no limit; bytes `None`: the default of the broker in use, see `retention_bytes()`).
    pub retention_ms: i64,
    pub retention_bytes: Option<i64>,
    /// Width of the duplicate-id window, in offsets of one partition.
    pub id_window: i64,
    /// Test-only fault point (see `Cli::test_fail_calculator_after`).
    pub test_fail_calculator_after: Option<u64>,
    /// Test-only fault point (see `Cli::test_stall_calculator_after`).
    pub test_stall_calculator_after: Option<u64>,
    /// See `Cli::stuck_after_seconds`.
    pub stuck_after: std::time::Duration,
}

/// When the balance calculator snapshots its state (see `state_store`).
/// Which of the settings [`crate::kept`] keeps the command line (or the environment)
/// set, so they win over the kept ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Explicit {
    pub rate: bool,
    pub paused: bool,
    pub accounts: bool,
    pub credit_percent: bool,
    pub amounts: bool,
}

#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub every_records: i64,
    pub every: std::time::Duration,
    pub chunk_accounts: usize,
    pub abort_after: Option<u32>,
}

/// Per partition on the managed broker unless `--retention-mb` says otherwise.
pub const MANAGED_RETENTION_MB: u64 = 128;

/// Where `scripts/setup.sh` lists the broker's jars: `$CASHFLOW_TOOLS/kafka-classpath.txt`,
/// else `~/.cache/cashflow/tools/kafka-classpath.txt`.
fn default_kafka_classpath() -> PathBuf {
    let tools = std::env::var_os("CASHFLOW_TOOLS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cashflow/tools"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    tools.join("kafka-classpath.txt")
}

fn default_data_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("cashflow"))
}

impl Settings {
    /// Bytes kept per partition of a topic cashflow creates: `--retention-mb`, else
    /// [`MANAGED_RETENTION_MB`] on the managed broker and no limit on another.
    pub fn retention_bytes(&self) -> i64 {
        self.retention_bytes.unwrap_or(if self.brokers.is_none() {
            MANAGED_RETENTION_MB as i64 * (1 << 20)
        } else {
            -1
        })
    }

    /// Defaults for tests and embedding: everything on loopback with free ports.
    pub fn for_tests(brokers: Option<String>, topic: &str) -> Settings {
        let cli = Cli::parse_from([
            "cashflow",
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
            "--paused",
            "--ephemeral",
        ]);
        let mut s = cli
            .into_settings()
            .unwrap_or_else(|e| panic!("default settings are valid: {e}"));
        s.brokers = brokers;
        s.topic = topic.to_owned();
        s.group_prefix = format!("cashflow-{topic}");
        s
    }
}

#[cfg(test)]
mod tests;
