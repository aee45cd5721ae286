//! A record as the calculator reads it: its position, its transaction if it is a valid one, and
//! its key.

use cashflow_shared::ledger::Position;
use cashflow_shared::{RecordKey, TransactionRef};
use rdkafka::message::{BorrowedMessage, Message};

/// A record read for [`Ledger::apply_run`](cashflow_shared::Ledger::apply_run): its position,
/// the transaction if it is a valid one, and what its key was.
pub(super) type Parsed<'a> = (Position, Option<TransactionRef<'a>>, RecordKey);

pub(super) fn parse<'a>(m: &'a BorrowedMessage<'_>) -> Parsed<'a> {
    let tx = TransactionRef::parse(m.payload().unwrap_or_default()).ok();
    let key = tx
        .as_ref()
        .map_or(RecordKey::Other, |t| RecordKey::of(m.key(), t.account));
    (position(m), tx, key)
}

/// Records parsed and applied under one ledger lock (see [`Calculator::prepare`]): a few dozen
/// make the lock's cost vanish, and at most this many are parsed in vain when a run stops
/// early (a flood of invalid records is parsed about twice, not a whole batch over).
pub(super) const RUN: usize = 64;

pub(super) fn position(msg: &BorrowedMessage<'_>) -> Position {
    Position {
        partition: msg.partition(),
        offset: msg.offset(),
    }
}
