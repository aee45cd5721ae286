//! The Kafka message: one bank transaction.
//!
//! JSON-compatible with the original Python producer in both directions:
//!
//! ```json
//! {"account": 3, "transaction_id": "3-Debit-abc123", "transaction_type": "Debit",
//!  "amount": 8, "new_balance": 97,
//!  "transaction_summary": {"Transactions for Customer ID 3": 5}}
//! ```
//!
//! We also write `timestamp_ms`; on input every field but `account`, `transaction_id`,
//! `transaction_type` and `amount` may be missing, and unknown fields are ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// A customer account number.
pub type AccountId = u32;

/// The record key the original producer puts on every message.
pub const ORIGINAL_KEY: &str = "transaction";

/// Largest encoded message the consumers accept (bytes); anything bigger is malformed.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest single transaction amount accepted: 1,000,000,000.00.
pub const MAX_AMOUNT: Money = Money::from_major(1_000_000_000);
/// Longest accepted `transaction_id`.
pub const MAX_ID_LEN: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxType {
    Debit,
    Credit,
}

impl TxType {
    pub fn as_str(self) -> &'static str {
        match self {
            TxType::Debit => "Debit",
            TxType::Credit => "Credit",
        }
    }
}

impl fmt::Display for TxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub account: AccountId,
    pub transaction_id: String,
    pub transaction_type: TxType,
    pub amount: Money,
    /// The producer's idea of the balance after this transaction: checked, never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_balance: Option<Money>,
    /// `{"Transactions for Customer ID <n>": <count>}`, the producer's per-account count.
    #[serde(default)]
    pub transaction_summary: BTreeMap<String, u64>,
    /// Milliseconds since the Unix epoch when the producer made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Which producer wrote it (cashflow's: `cashflow-<hex>`, kept with the state store); the original's
    /// scripts write none. The page's invariant compares per producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<String>,
    /// The account's transaction number at the producer (1, 2, …): the calculator counts a
    /// record applied after a later one of its account as out of order (see
    /// [`crate::ordering`]). The original's scripts write none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Why a record is not a usable transaction. The `Display` text is the reason shown to people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large: {0} bytes (limit {MAX_MESSAGE_BYTES})")]
    TooLarge(usize),
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("not a transaction: {0}")]
    Json(String),
    #[error("invalid transaction: {0}")]
    Invalid(String),
}

impl Transaction {
    /// The summary key the original uses for an account.
    pub fn summary_key(account: AccountId) -> String {
        format!("Transactions for Customer ID {account}")
    }

    /// The signed effect on the balance: credits add, debits subtract.
    pub fn delta(&self) -> Money {
        match self.transaction_type {
            TxType::Credit => self.amount,
            TxType::Debit => Money::from_minor(-self.amount.minor()),
        }
    }

    /// The per-account sequence number the producer wrote, if it wrote one.
    pub fn producer_count(&self) -> Option<u64> {
        self.transaction_summary
            .get(&Self::summary_key(self.account))
            .copied()
    }

    /// Decodes and validates one Kafka record value.
    pub fn parse(bytes: &[u8]) -> Result<Transaction, ParseError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
        let tx: Transaction =
            serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
        tx.validate()?;
        Ok(tx)
    }

    pub fn validate(&self) -> Result<(), ParseError> {
        let invalid = |m: String| Err(ParseError::Invalid(m));
        if !self.amount.is_positive() {
            return invalid(format!("amount must be positive, got {}", self.amount));
        }
        if self.amount > MAX_AMOUNT {
            return invalid(format!(
                "amount {} exceeds the limit {MAX_AMOUNT}",
                self.amount
            ));
        }
        if self.transaction_id.trim().is_empty() {
            return invalid("empty transaction_id".into());
        }
        if self.transaction_id.len() > MAX_ID_LEN {
            return invalid(format!("transaction_id longer than {MAX_ID_LEN} bytes"));
        }
        if self
            .producer_id
            .as_ref()
            .is_some_and(|p| p.len() > MAX_ID_LEN)
        {
            return invalid(format!("producer_id longer than {MAX_ID_LEN} bytes"));
        }
        if let Some(b) = self.new_balance
            && b.minor()
                .checked_abs()
                .is_none_or(|a| a > MAX_AMOUNT.minor() * 1000)
        {
            return invalid(format!("new_balance {b} out of range"));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        // Serialising this struct cannot fail: all keys are strings and Money writes valid JSON.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A transaction for tests: only the fields a test cares about.
#[cfg(test)]
pub(crate) fn test_tx(account: AccountId, id: &str, ty: TxType, amount: i64) -> Transaction {
    Transaction {
        account,
        transaction_id: id.into(),
        transaction_type: ty,
        amount: Money::from_minor(amount),
        new_balance: None,
        transaction_summary: Default::default(),
        timestamp_ms: None,
        producer_id: None,
        sequence: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{
        "account": 3,
        "transaction_id": "3-Debit-abc123",
        "transaction_type": "Debit",
        "amount": 8,
        "new_balance": 97,
        "transaction_summary": {"Transactions for Customer ID 3": 5}
    }"#;

    #[test]
    fn reads_the_original_message() {
        let tx = Transaction::parse(ORIGINAL.as_bytes()).unwrap();
        assert_eq!(tx.account, 3);
        assert_eq!(tx.transaction_id, "3-Debit-abc123");
        assert_eq!(tx.transaction_type, TxType::Debit);
        assert_eq!(tx.amount, Money::from_major(8));
        assert_eq!(tx.new_balance, Some(Money::from_major(97)));
        assert_eq!(tx.producer_count(), Some(5));
        assert_eq!(tx.delta(), Money::from_major(-8));
    }

    #[test]
    fn writes_the_original_field_names() {
        let tx = Transaction::parse(ORIGINAL.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&tx.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(v, orig, "a round trip must give the original's JSON back");
    }

    #[test]
    fn tolerates_missing_optional_fields_and_extra_ones() {
        let tx = Transaction::parse(
            br#"{"account":1,"transaction_id":"x","transaction_type":"Credit","amount":2.5,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(tx.new_balance, None);
        assert!(tx.transaction_summary.is_empty());
        assert_eq!(tx.amount, Money::from_minor(250));
    }

    #[test]
    fn refuses_bad_records_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not a transaction"),
            (b"\xff\xfe", "not UTF-8"),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Refund","amount":2}"#,
                "unknown variant",
            ),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Debit"}"#,
                "missing field `amount`",
            ),
            (
                br#"{"account":"one","transaction_id":"x","transaction_type":"Debit","amount":1}"#,
                "invalid type",
            ),
            (
                br#"{"account":-1,"transaction_id":"x","transaction_type":"Debit","amount":1}"#,
                "invalid value",
            ),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Debit","amount":-4}"#,
                "must be positive",
            ),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Debit","amount":0}"#,
                "must be positive",
            ),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Debit","amount":1e12}"#,
                "exceeds the limit",
            ),
            (
                br#"{"account":1,"transaction_id":"x","transaction_type":"Debit","amount":1.005}"#,
                "decimal places",
            ),
            (
                br#"{"account":1,"transaction_id":" ","transaction_type":"Debit","amount":1}"#,
                "empty transaction_id",
            ),
        ];
        for (bytes, want) in cases {
            let err = Transaction::parse(bytes).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: got {err:?}, want {want:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            Transaction::parse(&huge),
            Err(ParseError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parser: they parse, or are refused with a reason.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            match Transaction::parse(&bytes) {
                Ok(tx) => proptest::prop_assert!(tx.validate().is_ok()),
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }

        /// JSON-shaped mutations of a valid message: same guarantee, deeper in the parser.
        #[test]
        fn mutated_messages_never_panic(cut in 0usize..200, byte in proptest::num::u8::ANY, at in 0usize..200) {
            let mut m = ORIGINAL.as_bytes().to_vec();
            let at = at % m.len();
            m[at] = byte;
            m.truncate(cut.max(1).min(m.len()));
            let _ = Transaction::parse(&m);
        }
    }
}
