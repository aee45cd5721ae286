//! Test helpers, by job: the Kafka the tests use ([`broker`]), the app in-process ([`app`]),
//! plain Kafka clients ([`kafka`]), the real binary as a process ([`process`]) and a WebSocket
//! viewer ([`ws`]). Everything is re-exported here, so a test imports `common::…`.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod broker;
pub mod kafka;
pub mod process;
pub mod ws;

pub use app::*;
pub use broker::*;
pub use kafka::*;
pub use process::*;
