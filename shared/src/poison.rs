//! The poison-pill lesson: records the presenter injects to show that a malformed or duplicate
//! record goes to the dead-letter topic, balances do not move and the consumer never stops. Each
//! kind is what a real misbehaving client sends; none carries this server's producer id, so the
//! invariant is not theirs to keep.

use serde::{Deserialize, Serialize};

use crate::transaction::{AccountId, MAX_MESSAGE_BYTES, Transaction};

/// What to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Poison {
    NotJson,
    WrongTypes,
    UnknownType,
    NegativeAmount,
    Oversized,
    /// The producer's last transaction again: the same id and key, so the same partition.
    Duplicate,
}

/// Most characters of a dead letter's payload shown.
pub const PREVIEW_CHARS: usize = 120;

impl Poison {
    pub const ALL: [Poison; 6] = [
        Poison::NotJson,
        Poison::WrongTypes,
        Poison::UnknownType,
        Poison::NegativeAmount,
        Poison::Oversized,
        Poison::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Poison::NotJson => "not_json",
            Poison::WrongTypes => "wrong_types",
            Poison::UnknownType => "unknown_type",
            Poison::NegativeAmount => "negative_amount",
            Poison::Oversized => "oversized",
            Poison::Duplicate => "duplicate",
        }
    }

    pub fn from_name(name: &str) -> Option<Poison> {
        Poison::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn label(self) -> &'static str {
        match self {
            Poison::NotJson => "not JSON",
            Poison::WrongTypes => "wrong types",
            Poison::UnknownType => "unknown transaction type",
            Poison::NegativeAmount => "negative amount",
            Poison::Oversized => "oversized (70 KB)",
            Poison::Duplicate => "the last transaction again",
        }
    }

    /// The words the calculator's dead-letter reason contains for this kind.
    pub fn reason(self) -> &'static str {
        match self {
            Poison::NotJson => "not a transaction: expected",
            Poison::WrongTypes => "not a transaction: invalid type",
            Poison::UnknownType => "not a transaction: unknown variant `Refund`",
            Poison::NegativeAmount => "amount must be positive",
            Poison::Oversized => "message too large",
            Poison::Duplicate => "duplicate transaction_id",
        }
    }

    /// The record to write: its key and value. `account` keys the malformed kinds (so they
    /// land where that account's records do); a duplicate needs the producer's `last`
    /// transaction and the key it was sent with (`None` without one).
    pub fn record(
        self,
        account: AccountId,
        last: Option<(Option<&str>, &Transaction)>,
    ) -> Option<(Option<String>, Vec<u8>)> {
        let key = Some(account.to_string());
        let json = |s: String| Some((key.clone(), s.into_bytes()));
        match self {
            Poison::NotJson => json(format!(
                "account {account}: credit 10 (a line of text, not JSON)"
            )),
            Poison::WrongTypes => json(format!(
                r#"{{"account": "{account}", "transaction_id": "{account}-poison-types", "transaction_type": "Credit", "amount": "ten"}}"#
            )),
            Poison::UnknownType => json(format!(
                r#"{{"account": {account}, "transaction_id": "{account}-poison-refund", "transaction_type": "Refund", "amount": 10}}"#
            )),
            Poison::NegativeAmount => json(format!(
                r#"{{"account": {account}, "transaction_id": "{account}-poison-negative", "transaction_type": "Credit", "amount": -10}}"#
            )),
            Poison::Oversized => {
                let pad = "x".repeat(MAX_MESSAGE_BYTES + 6 * 1024);
                json(format!(
                    r#"{{"account": {account}, "transaction_id": "{account}-poison-big", "transaction_type": "Credit", "amount": 10, "note": "{pad}"}}"#
                ))
            }
            Poison::Duplicate => {
                // Without a key the copy could land on another partition, where it would not
                // be noticed as a duplicate (the window is per partition): not offered.
                let (key @ Some(_), tx) = last? else {
                    return None;
                };
                // The same transaction, written by someone else: not counted as the producer's.
                let copy = Transaction {
                    producer_id: None,
                    ..tx.clone()
                };
                Some((key.map(str::to_owned), copy.to_json().into_bytes()))
            }
        }
    }
}

/// Dead letters kept for the page, newest first.
pub const DEAD_LETTERS_SHOWN: usize = 20;

/// One record of the dead-letter topic, as the dead-letter panel shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// Its offset in the dead-letter topic's partition `dlq_partition`.
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub reason: String,
    /// Where it came from in the source topic.
    pub partition: i32,
    pub offset: i64,
    /// The record's size in the source topic (its original size when it was truncated).
    pub bytes: u64,
    pub preview: String,
    pub timestamp_ms: i64,
}

/// `GET /api/dead-letters`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// Letters read back since the server started.
    pub read: u64,
    /// Newest first.
    pub newest: Vec<DeadLetterView>,
}

/// The newest dead letters read back from the dead-letter topic (at most
/// [`DEAD_LETTERS_SHOWN`]), how many were read, and a version that changes with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterLog {
    newest: std::collections::VecDeque<DeadLetterView>,
    read: u64,
    version: u64,
}

impl DeadLetterLog {
    pub fn push(&mut self, letter: DeadLetterView) {
        if self.newest.len() == DEAD_LETTERS_SHOWN {
            self.newest.pop_back();
        }
        self.newest.push_front(letter);
        self.read += 1;
        self.version += 1;
    }

    /// Newest first.
    pub fn newest(&self) -> Vec<DeadLetterView> {
        self.newest.iter().cloned().collect()
    }

    pub fn read(&self) -> u64 {
        self.read
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Forgets them (the topic was re-created).
    pub fn clear(&mut self) {
        self.newest.clear();
        self.version += 1;
    }
}

/// A payload as the dead-letter panel shows it: at most [`PREVIEW_CHARS`] characters, control
/// characters as `·`, an ellipsis when cut.
pub fn preview(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(4 * PREVIEW_CHARS)]);
    let mut out: String = text
        .chars()
        .take(PREVIEW_CHARS)
        .map(|c| if c.is_control() { '·' } else { c })
        .collect();
    if text.chars().count() > PREVIEW_CHARS || payload.len() > 4 * PREVIEW_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use crate::transaction::TxType;

    #[test]
    fn every_malformed_kind_is_refused_with_its_reason() {
        for p in Poison::ALL {
            assert_eq!(Poison::from_name(p.name()), Some(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
            if p == Poison::Duplicate {
                continue;
            }
            let (key, value) = p.record(7, None).expect("a record");
            assert_eq!(key.as_deref(), Some("7"));
            let e = Transaction::parse(&value).expect_err("malformed");
            assert!(
                e.to_string().contains(p.reason()),
                "{p:?}: {e} does not say {:?}",
                p.reason()
            );
        }
    }

    #[test]
    fn a_duplicate_is_the_last_transaction_without_the_producer_id() {
        assert_eq!(Poison::Duplicate.record(1, None), None);
        let tx = Transaction {
            account: 3,
            transaction_id: "3-Credit-x".into(),
            transaction_type: TxType::Credit,
            amount: Money::from_minor(500),
            new_balance: Some(Money::from_minor(10_500)),
            transaction_summary: Default::default(),
            timestamp_ms: Some(1),
            producer_id: Some("cashflow-1".into()),
            sequence: Some(4),
        };
        let (key, value) = Poison::Duplicate
            .record(1, Some((Some("3"), &tx)))
            .expect("a record");
        assert_eq!(key.as_deref(), Some("3"));
        let back = Transaction::parse(&value).expect("a valid transaction");
        assert_eq!(back.transaction_id, tx.transaction_id);
        assert_eq!(back.producer_id, None);
        // Sent without a key it could land elsewhere: not offered.
        assert_eq!(Poison::Duplicate.record(1, Some((None, &tx))), None);
    }

    #[test]
    fn the_dead_letter_log_keeps_the_newest() {
        let mut log = DeadLetterLog::default();
        for i in 0..50 {
            log.push(DeadLetterView {
                offset: i,
                ..DeadLetterView::default()
            });
        }
        let newest = log.newest();
        assert_eq!(newest.len(), DEAD_LETTERS_SHOWN);
        assert_eq!((newest[0].offset, newest[19].offset), (49, 30));
        assert_eq!((log.read(), log.version()), (50, 50));
        log.clear();
        assert!(log.newest().is_empty());
        assert_eq!(log.version(), 51);
    }

    #[test]
    fn previews_are_bounded_and_printable() {
        assert_eq!(preview(b"a\nb"), "a·b");
        let long = preview(&[b'x'; 10_000]);
        assert_eq!(long.chars().count(), PREVIEW_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(preview(&[0xff, b'a']), "\u{fffd}a");
    }
}
