//! Exact money: a signed count of minor units (cents).
//!
//! On the wire an amount is a plain JSON number in major units, as the original scripts write
//! it (`"amount": 8`); fractions of up to two decimal places are accepted and written
//! (`8.25`). Reading never does float arithmetic: a decimal number is re-read from its shortest
//! decimal text, which is exact for every number written with at most two decimals.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in minor units (1/100 of the currency unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a text or number is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("not a decimal number: {0:?}")]
    NotANumber(String),
    #[error("more than two decimal places: {0:?}")]
    TooPrecise(String),
    #[error("amount out of range: {0:?}")]
    OutOfRange(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    /// Whole currency units, e.g. `Money::from_major(100)` is 100.00.
    pub const fn from_major(major: i64) -> Self {
        Money(major * 100)
    }

    pub const fn minor(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Parses `8`, `-3`, `8.5`, `8.25`, `1e2` is refused (not how money is written).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(frac)
            || (digits.contains('.') && frac.is_empty())
        {
            return Err(MoneyError::NotANumber(s.to_owned()));
        }
        // Trailing zeros past the cents are harmless ("8.250"); anything else is not money.
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise(s.to_owned()));
        }
        let range = || MoneyError::OutOfRange(s.to_owned());
        let whole: i64 = whole.parse().map_err(|_| range())?;
        let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| range())?;
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or_else(range)?;
        Ok(Money(if neg { -minor } else { minor }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_i64(self.0 / 100)
        } else {
            // A JSON number with exactly the decimals we mean; no float in between.
            let raw = serde_json::value::RawValue::from_string(self.to_string())
                .map_err(serde::ser::Error::custom)?;
            raw.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of money (a number with at most two decimals)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                v.checked_mul(100)
                    .map(Money)
                    .ok_or_else(|| E::custom(MoneyError::OutOfRange(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(100))
                    .map(Money)
                    .ok_or_else(|| E::custom(MoneyError::OutOfRange(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                if !v.is_finite() || v.abs() >= 1e15 {
                    return Err(E::custom(MoneyError::OutOfRange(v.to_string())));
                }
                // Fast path: below 1e13 an f64's spacing is under a cent, so at most one
                // whole number of cents reads back to `v`; if `cents / 100` does, that is the
                // decimal the sender wrote (the slow path below would find the same).
                if v.abs() < 1e13 {
                    let cents = (v * 100.0).round();
                    if cents / 100.0 == v {
                        return Ok(Money(cents as i64));
                    }
                }
                // `Display` for f64 prints the shortest text that reads back to the same
                // number, i.e. the decimal the sender wrote; parse that text exactly (and
                // refuse more than two decimals with the reason).
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!("8".parse(), Ok(Money(800)));
        assert_eq!("8.5".parse(), Ok(Money(850)));
        assert_eq!("8.25".parse(), Ok(Money(825)));
        assert_eq!("-0.07".parse(), Ok(Money(-7)));
        assert_eq!("8.250".parse(), Ok(Money(825)));
        assert!(matches!(
            "8.251".parse::<Money>(),
            Err(MoneyError::TooPrecise(_))
        ));
        for bad in ["", "-", "8.", ".5", "1e2", "8,5", "NaN", "12a", "--1"] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?} must be refused");
        }
        assert!(matches!(
            "99999999999999999999".parse::<Money>(),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn json_numbers_read_as_their_decimal_text() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for _ in 0..200_000 {
            let whole: i64 = match rng.random_range(0..3) {
                0 => rng.random_range(0..100),
                1 => rng.random_range(0..10_000_000),
                // Up to 10^11 (balances are bounded by 1000 × MAX_AMOUNT): with four decimals
                // that is 15 digits, which serde_json reads as the nearest f64.
                _ => rng.random_range(0..100_000_000_000),
            };
            let decimals = rng.random_range(0..5usize);
            let frac: u64 = rng.random_range(0..10u64.pow(decimals as u32));
            let text = if decimals == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{frac:0decimals$}")
            };
            // The fast path agrees with the shortest-text path, value or refusal; and where
            // an f64 holds the text exactly (15 significant digits), with the text itself.
            let number = serde_json::from_str::<Money>(&text).ok();
            let f: f64 = text.parse().unwrap();
            let shortest = f.to_string().parse::<Money>().ok();
            assert_eq!(number, shortest, "{text}");
            let digits = text.chars().filter(char::is_ascii_digit).count();
            if digits <= 15 {
                assert_eq!(number, text.parse::<Money>().ok(), "{text}");
            }
        }
    }

    #[test]
    fn json_round_trip_is_exact() {
        for minor in [
            0,
            1,
            7,
            10,
            99,
            100,
            825,
            10_000,
            -5,
            -12_34,
            12_345_678_901,
        ] {
            let m = Money(minor);
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Money>(&text).unwrap(), m, "{text}");
        }
        assert_eq!(serde_json::to_string(&Money(800)).unwrap(), "8");
        assert_eq!(serde_json::to_string(&Money(825)).unwrap(), "8.25");
        assert_eq!(serde_json::to_string(&Money(5)).unwrap(), "0.05");
        assert_eq!(serde_json::from_str::<Money>("0.1").unwrap(), Money(10));
        assert_eq!(
            serde_json::from_str::<Money>("\"3.30\"").unwrap(),
            Money(330)
        );
        assert!(serde_json::from_str::<Money>("0.001").is_err());
        assert!(serde_json::from_str::<Money>("1e300").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
    }

    #[test]
    fn displays_with_cents() {
        assert_eq!(Money(800).to_string(), "8.00");
        assert_eq!(Money(-7).to_string(), "-0.07");
        assert_eq!(Money(i64::MIN).to_string(), "-92233720368547758.08");
    }
}
