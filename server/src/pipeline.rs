//! The pipeline: the producer, the two consumers and what they share.
//!
//! - [`producer`] generates random transactions (or bursts and manual ones on command) and
//!   publishes them to the transactions topic, keyed by account so each account's
//!   transactions stay in order on one partition.
//! - [`logging_consumer`] (its own group) logs every transaction and keeps a bounded feed of
//!   recent ones.
//! - [`balance_consumer`] (its own group, run as 1…N members by [`calculator_group`]) is the
//!   authority for balances: it applies records to the ledger ([`crate::state::ledger`]), checks the
//!   producer's `new_balance`, and stores each offset only after its record is applied.
//! - [`consume`] is the consume loop both consumers share (at-least-once, in-order dead-letter
//!   settling, a final commit); [`dead_letters`] writes what cannot be applied to
//!   `<topic>.dlq` and [`dead_letter_view`] reads it back for the page.

pub mod balance_consumer;
pub mod calculator_group;
pub mod consume;
pub mod dead_letter_view;
pub mod dead_letters;
pub mod logging_consumer;
pub mod producer;
