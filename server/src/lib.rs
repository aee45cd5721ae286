//! cashflow: a bank simulated on Apache Kafka.
//!
//! One process runs a producer, two consumer groups and an HTTP server, and (with no
//! `--brokers`) the Apache Kafka broker they use. The folders follow the design:
//!
//! | module | what |
//! |---|---|
//! | [`config`] | settings from defaults, environment and flags; the `-X` passthrough, checked and redacted ([`config::properties`]) |
//! | [`kafka`] | client configuration and callbacks, the topics and the broker watch ([`kafka::topics`], [`kafka::progress`]), the topic as the broker sees it ([`kafka::topic_view`]), the managed broker ([`kafka::managed`]) |
//! | [`pipeline`] | the producer, the logging consumer, the balance calculator and its group, the consume loop they share, dead letters |
//! | [`store`] | the calculator's state store on Kafka: its changelog snapshots and the restore from them |
//! | [`state`] | what the tasks share with the HTTP server: the ledger ([`state::ledger`]) and small stores, one lock each, domain verbs |
//! | [`kept`] | what the presenter set, kept in the data dir across restarts |
//! | [`monitor`] | derives what follows from the state (history, the invariant's flags, the lessons' checks) |
//! | [`http`] | `/health`, the JSON API, `/metrics`, `/ws` and the hub that feeds it, the presenter's token |
//! | [`lessons`] | the lessons that run clients or brokers of their own (delivery, replay, outage) |
//! | [`reset`] | *Reset the demo*: fresh topics and groups for the next class |
//! | [`supervise`] | tasks restarted with back-off |
//! | [`app`] | starts everything and shuts it down in order: stop generating and flush the producer, commit the consumers' offsets, take the final snapshots, stop the HTTP server, stop the managed broker (tested in `tests/shutdown.rs`) |
//!
//! A record's way: [`pipeline::producer`] writes it keyed by account; [`pipeline::logging_consumer`]
//! logs it into the feed; a member of the balance calculator ([`pipeline::balance_consumer`])
//! applies it to the ledger ([`state::ledger`]) and stores its offset only after;
//! [`store::changelog`] snapshots the partition; [`http::hub`] sends the change to every page
//! in its next frame.
//!
//! A command's way: a page's frame reaches [`http`]'s `/ws`, which checks the presenter,
//! validates and [routes](cashflow_shared::command::Command::route) it to its one target: the
//! producer's handle ([`pipeline::producer::ProducerHandle`]), the calculator's group
//! ([`pipeline::calculator_group`]), a lesson ([`lessons::Lessons`]) or the reset ([`reset`]).

pub mod app;
pub mod config;
pub mod http;
pub mod kafka;
pub mod kept;
pub mod lessons;
pub mod monitor;
pub mod pipeline;
pub mod reset;
pub mod state;
pub mod store;
pub mod supervise;

pub use app::App;
pub use config::Settings;
