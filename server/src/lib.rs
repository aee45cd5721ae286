//! cashflow: a bank simulated on Apache Kafka.
//!
//! One process runs three Kafka clients and an HTTP server:
//!
//! - [`producer`] generates random transactions (or bursts and manual ones on command) and
//!   publishes them to the `transactions` topic, keyed by account so each account's
//!   transactions stay in order on one partition.
//! - [`logging_consumer`] (its own group) logs every transaction and keeps a bounded feed of
//!   recent ones.
//! - [`balance_consumer`] (its own group) is the authority for balances: it applies records
//!   to a [`cashflow_shared::Ledger`], checks the producer's `new_balance`, and stores each
//!   offset only after its record is applied (at-least-once, made idempotent by the ledger).
//!   Its state is a store in the Kafka Streams sense: [`state_store`] snapshots each
//!   partition's ledger to a compacted changelog topic, and [`restore`] rebuilds it at start
//!   (or when a partition arrives from another member) from the newest snapshot plus the tail.
//! - [`hub`] conflates the state into at most 20 frames a second for the page's viewers, and
//!   [`ws`] serves them on `/ws` and takes the page's commands.
//! - [`http`] serves `/health`, `/api/*`, `/ws` and the browser app.
//!
//! Around them: [`config`] (CLI flags and environment), [`kafka`] (client configuration,
//! redaction, and producers served by a task woken by librdkafka, [`kafka::polled`]), [`topics`] (topic creation and the broker watch, which records what it created in
//! [`created_topics`], which also notices a stuck
//! calculator or a re-created topic), [`consume`] (the consume loop both consumers share),
//! [`dead_letters`] (and [`dead_letter_view`], which reads them back for the page),
//! [`supervise`] (tasks restarted with back-off), the lessons' extra consumers ([`replay`],
//! [`naive_calculator`]), the [`outage`] lesson and the demo's [`reset`],
//! [`kafka::managed`] (the local Apache Kafka broker cashflow runs when no `--brokers` is
//! given) and [`app`], which starts everything and shuts it down in order: stop generating
//! and flush the producer, commit the consumers' offsets, take the final snapshots, stop the
//! HTTP server, stop the managed broker (tested in `tests/shutdown.rs`).

pub mod app;
pub mod app_state;
pub mod balance_consumer;
pub mod calculator_group;
pub mod config;
pub mod consume;
pub mod created_topics;
pub mod dead_letter_view;
pub mod dead_letters;
pub mod http;
pub mod hub;
pub mod kafka;
pub mod kafka_ffi;
pub mod kept_settings;
pub mod ledger_store;
pub mod logging_consumer;
pub mod metrics;
pub mod monitor;
pub mod naive_calculator;
pub mod outage;
pub mod presenter;
pub mod producer;
pub mod progress;
pub mod reader;
pub mod replay;
pub mod reset;
pub mod restore;
pub mod state;
pub mod state_store;
pub mod supervise;
pub mod topic_view;
pub mod topics;
pub mod ws;

pub use app::App;
pub use config::Settings;
