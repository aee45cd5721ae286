//! The balance calculator's state as a store in the Kafka Streams sense: the ledger
//! ([`crate::state::ledger`]) made durable in Kafka.
//!
//! - [`changelog`]: snapshots of each partition's ledger in a compacted changelog topic
//!   (`<topic>.balances`), written by its writer task.
//! - [`restore`]: rebuilds the ledger at start (or when a partition arrives from another
//!   member) from the newest snapshot plus the tail of the topic, never the whole history.

pub mod changelog;
pub mod restore;
