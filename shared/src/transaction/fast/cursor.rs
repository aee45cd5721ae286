//! The fast path's reader: a cursor over one record's text that reads JSON tokens of the plain
//! shapes it knows, or answers `None`.

use crate::money::Money;

pub(super) struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

/// Digits beyond which a number is left to serde_json: 18 always fit an `i64` (and `u64`).
const MAX_DIGITS: usize = 18;
/// Whole-number digits of an amount read here: below 1e13 serde_json's `f64` holds every cent
/// exactly (see `Money`'s deserializer), so both readings agree.
const MAX_MONEY_DIGITS: usize = 13;

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, i: 0 }
    }

    /// Whether the whole text is read.
    pub(super) fn at_end(&self) -> bool {
        self.i == self.s.len()
    }

    pub(super) fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    pub(super) fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub(super) fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// JSON's insignificant whitespace.
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters: where it starts and ends.
    pub(super) fn span(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + memchr::memchr(b'"', &self.bytes()[start..])?;
        // No early exit, so the compiler checks many bytes at a time.
        let plain = self.bytes()[start..end]
            .iter()
            .fold(true, |ok, &c| ok & (c != b'\\') & (c >= 0x20));
        if !plain {
            return None;
        }
        self.i = end + 1;
        Some((start, end))
    }

    /// A key: one of the fields' names is compared in place, anything else is scanned.
    pub(super) fn key(&mut self) -> Option<&'a [u8]> {
        const KEYS: [&[u8]; 9] = [
            b"account\"",
            b"transaction_id\"",
            b"transaction_type\"",
            b"amount\"",
            b"new_balance\"",
            b"transaction_summary\"",
            b"timestamp_ms\"",
            b"producer_id\"",
            b"sequence\"",
        ];
        let rest = self.bytes().get(self.i + 1..)?;
        if self.bytes()[self.i] == b'"'
            && let Some(k) = KEYS.iter().find(|k| rest.starts_with(k))
        {
            self.i += 1 + k.len();
            return Some(&k[..k.len() - 1]);
        }
        self.raw_string()
    }

    pub(super) fn raw_string(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.span()?;
        Some(&self.bytes()[start..end])
    }

    /// The same, borrowed as text: quotes are ASCII, so both ends lie on characters.
    pub(super) fn string(&mut self) -> Option<&'a str> {
        let (start, end) = self.span()?;
        self.s.get(start..end)
    }

    /// Decimal digits as JSON writes them (no leading zero), at most `max`.
    pub(super) fn digits(&mut self, max: usize) -> Option<u64> {
        let start = self.i;
        let mut v = 0u64;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            v = v * 10 + u64::from(d - b'0');
            self.i += 1;
            if self.i - start > max {
                return None;
            }
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.bytes()[start] == b'0') {
            return None;
        }
        Some(v)
    }

    /// After a number: a fraction or exponent makes it a float, left to serde_json.
    pub(super) fn integer_end(&self) -> Option<()> {
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    pub(super) fn uint(&mut self) -> Option<u64> {
        let v = self.digits(MAX_DIGITS)?;
        self.integer_end()?;
        Some(v)
    }

    /// A leading minus sign, taken.
    pub(super) fn minus(&mut self) -> bool {
        let neg = self.peek() == Some(b'-');
        self.i += usize::from(neg);
        neg
    }

    pub(super) fn int(&mut self) -> Option<i64> {
        let neg = self.minus();
        let v = i64::try_from(self.uint()?).ok()?;
        // serde_json reads `-0` as the float -0.0, which an integer field refuses.
        match (neg, v) {
            (true, 0) => None,
            (true, v) => Some(-v),
            (false, v) => Some(v),
        }
    }

    /// An amount: a whole number, or one with one or two decimals, below 1e13.
    pub(super) fn money(&mut self) -> Option<Money> {
        let neg = self.minus();
        let whole = self.digits(MAX_MONEY_DIGITS)?;
        let mut cents = i64::try_from(whole).ok()? * 100;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let start = self.i;
            let mut frac = 0i64;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                // A third decimal is serde_json's to judge (and 19 would overflow `frac`).
                if self.i - start == 2 {
                    return None;
                }
                frac = frac * 10 + i64::from(d - b'0');
                self.i += 1;
            }
            match self.i - start {
                1 => cents += frac * 10,
                2 => cents += frac,
                _ => return None,
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            return None;
        }
        Some(Money::from_minor(if neg { -cents } else { cents }))
    }

    /// `transaction_summary`: an object of counts, read for its shape only.
    pub(super) fn summary(&mut self) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.span()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.uint()?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }
}
