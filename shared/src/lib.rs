//! Wire types and pure logic shared by the cashflow server and the browser app.
//!
//! Nothing here does I/O, so everything is testable in microseconds and compiles for both
//! native targets and `wasm32-unknown-unknown`.
//!
//! - [`money`]: exact amounts in integer minor units ([`Money`]), written as plain JSON numbers.
//! - [`transaction`]: the Kafka message, JSON-compatible with the original Python scripts.
//! - [`ledger`]: the balance calculator's pure core, per partition: applies transactions,
//!   detects replays and duplicate ids, and checks the producer's `new_balance`.
//! - [`snapshot`]: the state store's changelog records (a partition's ledger in bounded chunks).
//! - [`generator`]: random transactions, driven by any [`rand::Rng`] so tests are reproducible.
//! - [`api`]: JSON bodies the server's HTTP API returns.
//! - [`protocol`]: the WebSocket messages between server and page; [`patch`]: the JSON merge
//!   patches its deltas carry.
//! - [`dashboard`]: the page's state reducer; [`chart`]: chart geometry.
//! - [`format`](mod@format): money, labels and clock times as the page writes them.
//! - [`flow`]: the real records the page animates (every one at classroom rates, a sample above).
//! - [`group`]: the calculator's consumer group: owners and the rebalance timeline.
//! - [`invariant`]: the producer's acknowledged nets against the calculator's applied ones.
//! - [`latency`]: produce → applied percentiles over a sliding window.
//! - [`partitioner`], [`assignment`]: Kafka's key → partition and consumer-protocol bytes.

pub mod api;
pub mod assignment;
pub mod chart;
pub mod command;
pub mod dashboard;
pub mod flow;
pub mod format;
pub mod generator;
pub mod group;
pub mod invariant;
pub mod latency;
pub mod ledger;
pub mod lessons;
pub mod money;
pub mod naive;
pub mod ordering;
pub mod outage;
pub mod partitioner;
pub mod patch;
pub mod poison;
pub mod protocol;
pub mod replay;
pub mod snapshot;
pub mod transaction;

pub use ledger::{Ledger, Outcome};
pub use money::Money;
pub use transaction::{AccountId, RecordKey, Transaction, TransactionRef, TxFields, TxType};
