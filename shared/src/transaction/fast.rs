//! A fast path for reading the records cashflow's own producer writes, in front of serde_json.
//!
//! It reads one JSON object of the known fields whose strings hold no escapes and whose amounts
//! have at most two decimals, with or without whitespace (so the original's messages too), in any
//! key order. Anything else (an escape, an unknown or repeated field, `null`, an exponent, a
//! float where an integer belongs, a number beyond its fast range, broken JSON) it does not
//! judge: it answers `None` and serde_json reads the record as before and gives the reason.
//! Where it answers, it answers exactly what serde_json would (the proptests below compare the
//! two on generated and mutated records).
//!
//! Why by hand: serde_json spends ~270 ns on a 230-byte record and `sonic-rs` through serde
//! ~300 ns (both measured); parsing was ~40 % of the balance calculator's thread. This reader,
//! which knows the shape, takes ~120 ns (`cargo bench -p cashflow-shared --bench ledger`).

use std::borrow::Cow;

use super::{SummaryShape, TransactionRef, TxType};

mod cursor;

use cursor::Cursor;

/// Reads `bytes` if it is a record of the plain shape described above; `None` otherwise.
pub(super) fn parse(bytes: &[u8]) -> Option<TransactionRef<'_>> {
    // One check of the whole record (word at a time on ASCII), then strings are sliced out
    // of it without another.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut c = Cursor::new(text);
    c.ws();
    c.eat(b'{')?;
    let mut seen = 0u16;
    let mut account = None;
    let mut id = None;
    let mut ty = None;
    let mut amount = None;
    let mut new_balance = None;
    let mut timestamp_ms = None;
    let mut producer_id = None;
    let mut sequence = None;
    loop {
        c.ws();
        let key = c.key()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        let bit = match key {
            b"account" => {
                account = Some(u32::try_from(c.uint()?).ok()?);
                1
            }
            b"transaction_id" => {
                id = Some(c.string()?);
                2
            }
            b"transaction_type" => {
                ty = Some(match c.string()? {
                    "Debit" => TxType::Debit,
                    "Credit" => TxType::Credit,
                    _ => return None,
                });
                4
            }
            b"amount" => {
                amount = Some(c.money()?);
                8
            }
            b"new_balance" => {
                new_balance = Some(c.money()?);
                16
            }
            b"transaction_summary" => {
                c.summary()?;
                32
            }
            b"timestamp_ms" => {
                timestamp_ms = Some(c.int()?);
                64
            }
            b"producer_id" => {
                producer_id = Some(c.string()?);
                128
            }
            b"sequence" => {
                sequence = Some(c.uint()?);
                256
            }
            _ => return None,
        };
        // serde refuses a repeated field; leave that to it.
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        c.ws();
        match c.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    c.ws();
    if !c.at_end() {
        return None;
    }
    Some(TransactionRef {
        account: account?,
        transaction_id: Cow::Borrowed(id?),
        transaction_type: ty?,
        amount: amount?,
        new_balance,
        transaction_summary: SummaryShape,
        timestamp_ms,
        producer_id: producer_id.map(Cow::Borrowed),
        sequence,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::super::{Transaction, TransactionRef, decode};
    use crate::generator::{Generator, GeneratorSettings};
    use crate::money::Money;

    /// serde_json's reading of the same bytes, the reference.
    fn serde(bytes: &[u8]) -> Option<TransactionRef<'_>> {
        decode::<TransactionRef>(bytes).ok()
    }

    /// The fast path agrees with serde_json wherever it answers.
    fn agrees(text: &str) -> Result<bool, TestCaseError> {
        let b = text.as_bytes();
        match super::parse(b) {
            None => Ok(false),
            Some(fast) => {
                // serde_json may refuse what the fast path read only through `validate`,
                // which both run; compare before it.
                let slow: Result<TransactionRef, _> = serde_json::from_slice(b);
                prop_assert!(
                    slow.is_ok(),
                    "fast read {text:?}, serde_json refused: {slow:?}"
                );
                prop_assert_eq!(Ok(&fast), slow.as_ref().map_err(|_| ()), "{}", text);
                Ok(true)
            }
        }
    }

    #[test]
    fn the_producers_records_and_the_originals_take_the_fast_path() {
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(7);
        let mut g = Generator::new(
            GeneratorSettings {
                accounts: 1000,
                ..Default::default()
            },
            Money::from_major(100),
        )
        .unwrap();
        for i in 0..2000 {
            let mut tx: Transaction = g.next(&mut rng, 1_764_000_000_000 + i);
            if i % 2 == 0 {
                tx.producer_id = Some("cashflow-0123abcd".into());
                tx.sequence = Some(i as u64 + 1);
            }
            let json = tx.to_json();
            assert!(agrees(&json).unwrap(), "not on the fast path: {json}");
            assert!(serde(json.as_bytes()).is_some());
        }
        let original = r#"{"account": 3, "transaction_id": "3-Debit-abc123", "transaction_type": "Debit", "amount": 8.25, "new_balance": -97.5, "transaction_summary": {"Transactions for Customer ID 3": 5}}"#;
        assert!(agrees(original).unwrap());
    }

    #[test]
    fn what_it_leaves_to_serde_json() {
        let good = r#"{"account":17,"transaction_id":"a","transaction_type":"Credit","amount":12.34,"timestamp_ms":5}"#;
        assert!(super::parse(good.as_bytes()).is_some());
        for (from, to) in [
            ("\"a\"", r#""\u0061""#),                                    // an escape
            (r#""amount":12.34"#, r#""amount":1234e-2"#),                // an exponent
            (r#""amount":12.34"#, r#""amount":12.340"#),                 // three decimals
            (r#""amount":12.34"#, r#""amount":1.10000000000000000000"#), // twenty
            (r#""amount":12.34"#, r#""amount":12345678901234"#),         // beyond 1e13
            (r#""timestamp_ms":5"#, r#""timestamp_ms":-0"#),             // a float to serde_json
            (r#""timestamp_ms":5"#, r#""timestamp_ms":null"#),
            (r#""timestamp_ms":5"#, r#""timestamp_ms":5,"x":1"#), // unknown field
            (
                r#""timestamp_ms":5"#,
                r#""timestamp_ms":5,"timestamp_ms":6"#,
            ),
            (r#""account":17"#, r#""account":4294967296"#),
            (r#""account":17"#, r#""account":017"#),
            ("Credit", "Refund"),
        ] {
            let text = good.replace(from, to);
            assert_ne!(text, good);
            assert!(super::parse(text.as_bytes()).is_none(), "{text}");
        }
    }

    /// A value for a field: well-formed, edge and broken forms alike.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{0,24})?([eE][-+]?[0-9]{1,2})?",
            "0[0-9]{1,3}",
            "\"[a-zA-Z0-9 é\\\\\"\\n-]{0,10}\"",
            Just("\"Debit\"".to_string()),
            Just("\"Credit\"".to_string()),
            Just("null".to_string()),
            Just("{}".to_string()),
            "\\{\"[a-z ]{0,6}\":[0-9]{1,3}(,\"[a-z]{0,3}\":-?[0-9.]{1,4})?\\}",
            Just("[1]".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "account",
            "transaction_id",
            "transaction_type",
            "amount",
            "new_balance",
            "transaction_summary",
            "timestamp_ms",
            "producer_id",
            "sequence",
            "other",
        ])
    }

    fn gap() -> impl Strategy<Value = &'static str> {
        prop_oneof![8 => Just(""), 4 => Just(" "), 2 => Just("\n\t"), 1 => Just("x")]
    }

    /// A mostly well-formed value for a required field, sometimes anything.
    fn likely(good: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![4 => good, 1 => value()]
    }

    /// Objects holding the required fields (mostly well-formed) and others, in any order,
    /// with arbitrary spacing and repeats.
    fn objects() -> impl Strategy<Value = String> {
        (
            likely("[1-9][0-9]{0,9}"),
            likely("\"[a-z0-9-]{1,8}\""),
            likely("\"(Debit|Credit)\""),
            likely("-?[1-9][0-9]{0,13}(\\.[0-9]{1,2})?"),
            prop::collection::vec((key(), value()), 0..3),
        )
            .prop_flat_map(|(a, i, t, m, extra)| {
                let mut fields = vec![
                    ("account", a),
                    ("transaction_id", i),
                    ("transaction_type", t),
                    ("amount", m),
                ];
                fields.extend(extra);
                (
                    Just(fields).prop_shuffle(),
                    prop::collection::vec(gap(), 12),
                )
            })
            .prop_map(|(fields, gaps)| {
                let mut text = String::from("{");
                for (n, (k, v)) in fields.iter().enumerate() {
                    let g = gaps[n % gaps.len()];
                    if n > 0 {
                        text.push(',');
                    }
                    text.push_str(&format!("{g}\"{k}\"{g}:{g}{v}"));
                }
                text.push('}');
                text.push_str(gaps[11]);
                text
            })
    }

    #[test]
    fn the_generated_objects_reach_the_fast_path() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = objects();
        let (mut fast, mut slow_ok) = (0, 0);
        for _ in 0..1000 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            fast += usize::from(super::parse(text.as_bytes()).is_some());
            slow_ok += usize::from(serde_json::from_str::<TransactionRef>(&text).is_ok());
        }
        // Else the comparison below would only ever see `None`.
        assert!(
            fast > 50 && slow_ok > fast,
            "fast {fast}, serde_json {slow_ok} of 1000"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Wherever the fast path answers, it answers as serde_json does.
        #[test]
        fn agrees_with_serde_json_on_generated_objects(text in objects()) {
            agrees(&text)?;
        }

        /// A valid record, one byte changed and cut anywhere.
        #[test]
        fn agrees_with_serde_json_on_mutated_records(
            at in 0usize..400, byte in any::<u8>(), cut in 0usize..400, digits in "[0-9]{1,3}",
        ) {
            let good = format!(r#"{{"account":{digits},"transaction_id":"{digits}-Credit-x","transaction_type":"Credit","amount":12.{digits},"new_balance":-220.5,"transaction_summary":{{"Transactions for Customer ID {digits}":5}},"timestamp_ms":1764000000000,"producer_id":"cashflow-ab","sequence":{digits}}}"#);
            let mut m = good.into_bytes();
            let at = at % m.len();
            m[at] = byte;
            m.truncate(cut.max(1).min(m.len()));
            if let Some(fast) = super::parse(&m) {
                let slow: Result<TransactionRef, _> = serde_json::from_slice(&m);
                prop_assert_eq!(Ok(fast), slow.map_err(|_| ()));
            }
        }
    }
}
