//! The command line (every flag also an environment variable) and its validation into
//! [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use cashflow_shared::Money;
use clap::Parser;

use super::{Rate, parse_kv, parse_money};

mod checks;

pub use checks::FlagError;

/// A bank simulated on Kafka, shown live in the browser.
#[derive(Parser, Debug, Clone)]
#[command(name = "cashflow", version, about)]
pub struct Cli {
    /// Kafka bootstrap servers (host:port,...). Without it cashflow runs a local Apache Kafka
    /// broker itself (Java and the jars from `scripts/setup.sh demo`).
    #[arg(long, env = "CASHFLOW_BROKERS")]
    pub brokers: Option<String>,
    /// Topic the transactions go to.
    #[arg(long, env = "CASHFLOW_TOPIC", default_value = "transactions")]
    pub topic: String,
    /// Partitions of the topic when cashflow creates it.
    #[arg(long, env = "CASHFLOW_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub partitions: i32,
    /// Replication factor of the topics when cashflow creates them. Default: the number of
    /// local brokers (1 or 3) without --brokers, 1 with it.
    #[arg(long, env = "CASHFLOW_REPLICATION_FACTOR",
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub replication_factor: Option<i32>,
    /// Address of the HTTP server (page, API, WebSocket).
    #[arg(long, env = "CASHFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Transactions per second (0.1 to 1000000), or "max".
    #[arg(long, env = "CASHFLOW_RATE", default_value = "2", value_parser = Rate::parse)]
    pub rate: Rate,
    /// Start with generation paused.
    #[arg(long, env = "CASHFLOW_PAUSED")]
    pub paused: bool,
    /// Start with the balance calculator's fetching paused (it joins its group and holds its
    /// partitions; resume it from the page): lag from the first second, or a benchmark's start.
    #[arg(long, env = "CASHFLOW_CALCULATOR_PAUSED")]
    pub calculator_paused: bool,
    /// Number of accounts (1 to 1000).
    #[arg(long, env = "CASHFLOW_ACCOUNTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub accounts: u32,
    /// Share of credits among generated transactions, in percent.
    #[arg(long, env = "CASHFLOW_CREDIT_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub credit_percent: u8,
    /// Smallest generated amount.
    #[arg(long, env = "CASHFLOW_MIN_AMOUNT", default_value = "1", value_parser = parse_money)]
    pub min_amount: Money,
    /// Largest generated amount.
    #[arg(long, env = "CASHFLOW_MAX_AMOUNT", default_value = "20", value_parser = parse_money)]
    pub max_amount: Money,
    /// Balance every account opens with (the original uses 100).
    #[arg(long, env = "CASHFLOW_OPENING_BALANCE", default_value = "100", value_parser = parse_money)]
    pub opening_balance: Money,
    /// Prefix of the consumer group ids (`<prefix>-balance`, `<prefix>-logger`).
    #[arg(long, env = "CASHFLOW_GROUP_PREFIX", default_value = "cashflow")]
    pub group_prefix: String,
    /// librdkafka property for every client, like kcat's -X (repeatable). It overrides
    /// cashflow's own timings (e.g. session.timeout.ms), not what correctness needs (group ids,
    /// offset storing). In the environment: CASHFLOW_KAFKA_PROPS="k=v,k=v" (values with commas:
    /// use --kafka-props-file).
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "CASHFLOW_KAFKA_PROPS",
          value_delimiter = ',', value_parser = parse_kv, hide_env_values = true)]
    pub kafka: Vec<(String, String)>,
    /// A file of librdkafka properties, one KEY=VALUE a line (`#` starts a comment); values may
    /// hold commas and `=`. Applied before -X.
    #[arg(long, env = "CASHFLOW_KAFKA_PROPS_FILE", value_name = "PATH")]
    pub kafka_props_file: Option<PathBuf>,
    /// Where the local Apache Kafka broker takes clients (the next free port if taken; a
    /// loopback address).
    #[arg(
        long,
        env = "CASHFLOW_KAFKA_LISTEN",
        default_value = "127.0.0.1:9092",
        alias = "embedded-listen"
    )]
    pub kafka_listen: SocketAddr,
    /// The `java` (17 or newer) that runs the local broker.
    #[arg(long, env = "CASHFLOW_JAVA", default_value = "java")]
    pub java: PathBuf,
    /// The file listing the local broker's jars (written by `scripts/setup.sh`). Default:
    /// $CASHFLOW_TOOLS/kafka-classpath.txt or ~/.cache/cashflow/tools/kafka-classpath.txt.
    #[arg(long, env = "CASHFLOW_KAFKA_CLASSPATH", value_name = "FILE")]
    pub kafka_classpath: Option<PathBuf>,
    /// How many Apache Kafka nodes cashflow runs without --brokers: 1, or 3 for the
    /// replication lesson (each broker and controller, the topics replicated three times,
    /// min.insync.replicas=2; the page stops and starts a node).
    #[arg(long, env = "CASHFLOW_LOCAL_BROKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=3))]
    pub local_brokers: u8,
    /// Each local broker's JVM heap, in MiB. Default: 512 for one node, 384 each for three.
    #[arg(long, env = "CASHFLOW_KAFKA_HEAP_MB",
          value_parser = clap::value_parser!(u32).range(128..=65_536))]
    pub kafka_heap_mb: Option<u32>,
    /// Where the local broker keeps its log (`kafka/`) and cashflow what the presenter set,
    /// so a restart loses nothing. Default: $XDG_DATA_HOME/cashflow or ~/.local/share/cashflow.
    #[arg(long, env = "CASHFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the local broker's log in a temporary folder, removed at exit.
    #[arg(long, env = "CASHFLOW_EPHEMERAL")]
    pub ephemeral: bool,
    /// Folder with the built browser app (Trunk's output).
    #[arg(long, env = "CASHFLOW_WEB_DIR", default_value = "dist")]
    pub web_dir: PathBuf,
    /// Extra page origins allowed to open the WebSocket besides the server's own (repeatable;
    /// `trunk serve` on 127.0.0.1:8081 and localhost:8081 are allowed by default).
    #[arg(long = "allow-origin", env = "CASHFLOW_ALLOW_ORIGINS", value_delimiter = ',',
          default_values_t = ["http://127.0.0.1:8081".to_string(), "http://localhost:8081".to_string()])]
    pub allow_origins: Vec<String>,
    /// When set, viewers are read-only and only a page that logs in with this token may send
    /// commands. Never logged.
    /// Without it, a server listening beyond loopback makes a token once (kept in the data
    /// dir) and prints a presenter link.
    #[arg(long, env = "CASHFLOW_PRESENTER_TOKEN", hide_env_values = true)]
    pub presenter_token: Option<String>,
    /// Let every page that reaches the server command the demo, also beyond loopback, with no
    /// presenter token (e.g. in a container whose port the host publishes on its loopback).
    #[arg(
        long,
        env = "CASHFLOW_OPEN_CONTROLS",
        conflicts_with = "presenter_token"
    )]
    pub open_controls: bool,
    /// The balance calculator snapshots a partition's state after this many records of it...
    #[arg(long, env = "CASHFLOW_SNAPSHOT_RECORDS", default_value_t = 50_000,
          value_parser = clap::value_parser!(i64).range(100..=100_000_000))]
    pub snapshot_records: i64,
    /// ...and every partition that changed since its last snapshot every this many seconds.
    #[arg(long, env = "CASHFLOW_SNAPSHOT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub snapshot_seconds: u64,
    /// Hours a record stays in the topic when cashflow creates it (balances do not need old
    /// records: they are restored from snapshots). 0 keeps records forever.
    #[arg(long, env = "CASHFLOW_RETENTION_HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// Megabytes of records kept per partition when cashflow creates the topic (older ones are
    /// deleted); 0 for no size limit. Default: 128 on the local broker, none otherwise.
    #[arg(long, env = "CASHFLOW_RETENTION_MB")]
    pub retention_mb: Option<u64>,
    /// A transaction id equal to one within this many earlier offsets of the same partition is
    /// a duplicate (dead-lettered). A restore re-reads this many records before a snapshot.
    #[arg(long, env = "CASHFLOW_ID_WINDOW", default_value_t = cashflow_shared::ledger::DEFAULT_ID_WINDOW,
          value_parser = clap::value_parser!(i64).range(1..=10_000_000))]
    pub id_window: i64,
    /// Accounts per snapshot record (tests use small values to get many records).
    #[arg(long, env = "CASHFLOW_SNAPSHOT_CHUNK_ACCOUNTS", hide = true,
          default_value_t = cashflow_shared::snapshot::CHUNK_ACCOUNTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub snapshot_chunk_accounts: usize,
    /// Test-only fault point: abort the process after this many records of a snapshot that has
    /// more, as a crash in the middle of writing one would.
    #[arg(long, env = "CASHFLOW_TEST_ABORT_SNAPSHOT_AFTER", hide = true)]
    pub test_abort_snapshot_after: Option<u32>,
    /// Seconds without progress, with records to read, after which `/health` says the balance
    /// calculator is stuck.
    #[arg(long, env = "CASHFLOW_STUCK_AFTER_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stuck_after_seconds: u64,
    /// Test-only fault point: the balance calculator stalls (until shutdown) at this record.
    #[arg(long, env = "CASHFLOW_TEST_STALL_CALCULATOR_AFTER", hide = true)]
    pub test_stall_calculator_after: Option<u64>,
    /// Test-only fault point: the balance calculator fails (once) at this record.
    #[arg(long, env = "CASHFLOW_TEST_FAIL_CALCULATOR_AFTER", hide = true)]
    pub test_fail_calculator_after: Option<u64>,
}
