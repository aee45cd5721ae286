//! The balance calculator's state, a store in the Kafka Streams sense.
//!
//! - [`ledger`]: the balances per partition as the rest of the server reaches them, in
//!   mini-redis's `Db` style (one owner, domain verbs, no lock guard handed out).
//! - [`changelog`]: snapshots of each partition's ledger in a compacted changelog topic
//!   (`<topic>.balances`), written by its writer task.
//! - [`restore`]: rebuilds the ledger at start (or when a partition arrives from another
//!   member) from the newest snapshot plus the tail of the topic, never the whole history.

pub mod changelog;
pub mod ledger;
pub mod restore;
