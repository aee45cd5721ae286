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

mod fast;
mod key;

pub use key::{ORIGINAL_KEY, RecordKey};

/// A customer account number.
pub type AccountId = u32;

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

/// What the ledger reads of a transaction, from the owned [`Transaction`] or the borrowed
/// [`TransactionRef`] the balance calculator parses without allocating.
pub trait TxFields {
    fn account(&self) -> AccountId;
    fn id(&self) -> &str;
    fn tx_type(&self) -> TxType;
    fn amount(&self) -> Money;
    fn new_balance(&self) -> Option<Money>;
    fn producer(&self) -> Option<&str>;
    fn sequence(&self) -> Option<u64>;

    /// The signed effect on the balance: credits add, debits subtract.
    fn delta(&self) -> Money {
        match self.tx_type() {
            TxType::Credit => self.amount(),
            TxType::Debit => Money::from_minor(-self.amount().minor()),
        }
    }
}

/// Both forms hold the same fields under the same names.
macro_rules! tx_fields {
    ($t:ty) => {
        impl TxFields for $t {
            fn account(&self) -> AccountId {
                self.account
            }
            fn id(&self) -> &str {
                &self.transaction_id
            }
            fn tx_type(&self) -> TxType {
                self.transaction_type
            }
            fn amount(&self) -> Money {
                self.amount
            }
            fn new_balance(&self) -> Option<Money> {
                self.new_balance
            }
            fn producer(&self) -> Option<&str> {
                self.producer_id.as_deref()
            }
            fn sequence(&self) -> Option<u64> {
                self.sequence
            }
        }
    };
}

tx_fields!(Transaction);
tx_fields!(TransactionRef<'_>);

/// The same record as [`Transaction`], read in place: the strings borrow the record (unless
/// they hold escapes) and `transaction_summary` is checked for its shape, not kept. The
/// balance calculator's hot path (a refused record, rare, is read again as a [`Transaction`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TransactionRef<'a> {
    pub account: AccountId,
    #[serde(borrow)]
    pub transaction_id: std::borrow::Cow<'a, str>,
    pub transaction_type: TxType,
    pub amount: Money,
    #[serde(default)]
    pub new_balance: Option<Money>,
    #[serde(default)]
    transaction_summary: SummaryShape,
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
    #[serde(default, borrow)]
    pub producer_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub sequence: Option<u64>,
}

/// A `transaction_summary` read for its shape only (an object of counts), as
/// [`Transaction`]'s map would be, without keeping it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SummaryShape;

impl<'de> Deserialize<'de> for SummaryShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SummaryShape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<SummaryShape, A::Error> {
                while m.next_entry::<std::borrow::Cow<'de, str>, u64>()?.is_some() {}
                Ok(SummaryShape)
            }
        }
        d.deserialize_map(V)
    }
}

impl TransactionRef<'_> {
    /// Decodes and validates one Kafka record value, with [`Transaction::parse`]'s rules and
    /// errors.
    pub fn parse(bytes: &[u8]) -> Result<TransactionRef<'_>, ParseError> {
        if bytes.len() <= MAX_MESSAGE_BYTES
            && let Some(tx) = fast::parse(bytes)
        {
            validate(&tx)?;
            return Ok(tx);
        }
        decode(bytes)
    }
}

/// Decodes and validates one Kafka record value, in either form.
fn decode<'a, T: Deserialize<'a> + TxFields>(bytes: &'a [u8]) -> Result<T, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    let tx: T = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    validate(&tx)?;
    Ok(tx)
}

/// The rules beyond the JSON shape, for both forms.
fn validate(tx: &impl TxFields) -> Result<(), ParseError> {
    let invalid = |m: String| Err(ParseError::Invalid(m));
    let amount = tx.amount();
    if !amount.is_positive() {
        return invalid(format!("amount must be positive, got {amount}"));
    }
    if amount > MAX_AMOUNT {
        return invalid(format!("amount {amount} exceeds the limit {MAX_AMOUNT}"));
    }
    let id = tx.id();
    if id.trim().is_empty() {
        return invalid("empty transaction_id".into());
    }
    if id.len() > MAX_ID_LEN {
        return invalid(format!("transaction_id longer than {MAX_ID_LEN} bytes"));
    }
    if tx.producer().is_some_and(|p| p.len() > MAX_ID_LEN) {
        return invalid(format!("producer_id longer than {MAX_ID_LEN} bytes"));
    }
    if let Some(b) = tx.new_balance()
        && b.minor()
            .checked_abs()
            .is_none_or(|a| a > MAX_AMOUNT.minor() * 1000)
    {
        return invalid(format!("new_balance {b} out of range"));
    }
    Ok(())
}

impl Transaction {
    /// The summary key the original uses for an account.
    pub fn summary_key(account: AccountId) -> String {
        format!("Transactions for Customer ID {account}")
    }

    /// The signed effect on the balance: credits add, debits subtract.
    pub fn delta(&self) -> Money {
        TxFields::delta(self)
    }

    /// The per-account sequence number the producer wrote, if it wrote one.
    pub fn producer_count(&self) -> Option<u64> {
        self.transaction_summary
            .get(&Self::summary_key(self.account))
            .copied()
    }

    /// Decodes and validates one Kafka record value.
    pub fn parse(bytes: &[u8]) -> Result<Transaction, ParseError> {
        decode(bytes)
    }

    pub fn validate(&self) -> Result<(), ParseError> {
        validate(self)
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

    #[test]
    fn record_keys_are_classified_by_where_they_send_the_account() {
        assert_eq!(RecordKey::of(Some(b"17"), 17), RecordKey::Account);
        assert_eq!(RecordKey::of(Some(b"0"), 0), RecordKey::Account);
        assert_eq!(RecordKey::of(Some(b"transaction"), 17), RecordKey::Original);
        // Another account's number, other spellings (other partitions), junk, none.
        for key in [
            &b"18"[..],
            b"017",
            b"+17",
            b" 17",
            b"",
            b"99999999999999999999017",
            b"\xff",
        ] {
            assert_eq!(RecordKey::of(Some(key), 17), RecordKey::Other, "{key:?}");
        }
        assert_eq!(RecordKey::of(None, 17), RecordKey::Other);
        assert!(RecordKey::Original.keeps_order() && !RecordKey::Other.keeps_order());
    }

    #[test]
    fn the_borrowed_form_accepts_and_refuses_exactly_as_the_owned_one() {
        let good = r#"{"account":17,"transaction_id":"17-Credit-x","transaction_type":"Credit","amount":12.34,"new_balance":220.59,"transaction_summary":{"Transactions for Customer ID 17":5},"timestamp_ms":1764000000000,"producer_id":"cashflow-ab","sequence":5}"#;
        let cases = [
            good.to_string(),
            // The original's message: no producer, sequence or timestamp.
            r#"{"account": 3, "transaction_id": "3-Debit-1", "transaction_type": "Debit", "amount": 7, "new_balance": 93.0, "transaction_summary": {"Transactions for Customer ID 3": 1}}"#.into(),
            // Escapes in the strings (not borrowable: owned inside the Cow).
            good.replace("17-Credit-x", r#"17-Cr\u00e9dit-\"x\""#),
            good.replace("cashflow-ab", r"cash\nflow"),
            // Unknown fields are ignored by both.
            good.replace(r#""sequence":5"#, r#""sequence":5,"extra":[1,2]"#),
            // Refused by both, each for its reason.
            "not json".into(),
            good.replace(r#""amount":12.34"#, r#""amount":-1"#),
            good.replace(r#""amount":12.34"#, r#""amount":1.234"#),
            good.replace(r#""amount":12.34"#, r#""amount":"12.34""#),
            good.replace(r#""Credit","#, r#""Refund","#),
            good.replace(r#"{"Transactions for Customer ID 17":5}"#, r#""five""#),
            good.replace(r#"{"Transactions for Customer ID 17":5}"#, r#"{"Transactions for Customer ID 17":-5}"#),
            good.replace(r#""17-Credit-x""#, r#""  ""#),
            good.replace(r#""17-Credit-x""#, &format!(r#""{}""#, "x".repeat(MAX_ID_LEN + 1))),
            good.replace(r#""account":17,"#, ""),
            good.replace(r#""account":17"#, r#""account":-17"#),
            good.replace("220.59", "1e300"),
        ];
        for case in &cases {
            let owned = Transaction::parse(case.as_bytes());
            let borrowed = TransactionRef::parse(case.as_bytes());
            match (&owned, &borrowed) {
                (Ok(o), Ok(b)) => {
                    assert_eq!(
                        (
                            o.account,
                            o.id(),
                            o.delta(),
                            o.new_balance,
                            o.producer(),
                            o.sequence,
                            o.timestamp_ms
                        ),
                        (
                            b.account,
                            b.id(),
                            b.delta(),
                            b.new_balance,
                            b.producer(),
                            b.sequence,
                            b.timestamp_ms
                        ),
                        "{case}"
                    );
                }
                (Err(o), Err(b)) => assert_eq!(
                    std::mem::discriminant(o),
                    std::mem::discriminant(b),
                    "{case}: {o} / {b}"
                ),
                _ => panic!("{case}: owned {owned:?}, borrowed {borrowed:?}"),
            }
        }
        // In place: the id borrows the record when it holds no escapes.
        let b = TransactionRef::parse(good.as_bytes()).unwrap();
        assert!(matches!(b.transaction_id, std::borrow::Cow::Borrowed(_)));
    }

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
            // …and the borrowed form the calculator reads agrees, record for record.
            let owned = Transaction::parse(&m);
            let borrowed = TransactionRef::parse(&m);
            proptest::prop_assert_eq!(owned.is_ok(), borrowed.is_ok());
            if let (Ok(o), Ok(b)) = (owned, borrowed) {
                proptest::prop_assert_eq!(
                    (o.account, o.id(), o.delta(), o.new_balance, o.producer(), o.sequence, o.timestamp_ms),
                    (b.account, b.id(), b.delta(), b.new_balance, b.producer(), b.sequence, b.timestamp_ms)
                );
            }
        }
    }
}
