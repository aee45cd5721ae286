//! What a record's Kafka key says about the order its account's records keep.

use super::AccountId;

/// The record key the original producer puts on every message.
pub const ORIGINAL_KEY: &str = "transaction";

/// What a record's Kafka key says about where its account's records go.
///
/// A key that is the account's number (keys by account) or the original's one constant key
/// sends every record of the account to one partition, where Kafka keeps them in order; any
/// other key (random, none, a foreign producer's) may spread them over partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKey {
    /// The account's number.
    Account,
    /// [`ORIGINAL_KEY`], on every record.
    Original,
    /// Anything else, or no key.
    Other,
}

impl RecordKey {
    /// Classifies the key `key` of a record of `account`.
    pub fn of(key: Option<&[u8]>, account: AccountId) -> RecordKey {
        match key {
            Some(k) if k == ORIGINAL_KEY.as_bytes() => RecordKey::Original,
            Some(k) if is_decimal_of(k, account) => RecordKey::Account,
            _ => RecordKey::Other,
        }
    }

    /// Whether every record of the account with this kind of key lands in one partition.
    pub fn keeps_order(self) -> bool {
        matches!(self, RecordKey::Account | RecordKey::Original)
    }
}

/// Whether `key` is `account` written as keys by account write it ("17"; not "017", "+17"):
/// another spelling hashes to another partition.
fn is_decimal_of(key: &[u8], account: AccountId) -> bool {
    let canonical = key.len() == 1 || key.first() != Some(&b'0');
    let mut n: u64 = 0;
    for &b in key {
        if !b.is_ascii_digit() || n > u64::from(AccountId::MAX) {
            return false;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    canonical && !key.is_empty() && n == u64::from(account)
}
