//! The lessons that run Kafka clients or brokers of their own, on the presenter's command:
//!
//! - [`naive_calculator`]: delivery semantics, a deliberately naive calculator beside the exact
//!   one.
//! - [`replay`]: a fresh calculator reads the topic from the beginning and is compared with the
//!   live one.
//! - [`outage`]: the managed broker (or one node of three) stopped and started again.
//!
//! Their statuses live in [`crate::state::lessons`]; the guided checks in
//! [`cashflow_shared::lessons`], fed by [`crate::monitor`].

pub mod naive_calculator;
pub mod outage;
pub mod replay;
