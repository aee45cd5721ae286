//! Random transactions, and the producer's own running view of each account.
//!
//! The producer writes `new_balance` and the per-account count from this view, like the
//! original; the balance calculator checks them against its own [`crate::Ledger`]. The bank
//! allows no overdraft: a debit larger than the producer's view of the balance becomes a
//! credit, so balances stay positive in a long demo.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ledger::AccountState;
use crate::money::Money;
use crate::transaction::{AccountId, Transaction, TxType};

/// Most accounts a generator may simulate.
pub const MAX_ACCOUNTS: u32 = 1000;

/// What the generator makes. All values are validated by [`GeneratorSettings::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorSettings {
    /// Accounts `1..=accounts`.
    pub accounts: u32,
    /// Share of credits among generated transactions, 0–100 %.
    pub credit_percent: u8,
    pub min_amount: Money,
    pub max_amount: Money,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        GeneratorSettings {
            accounts: 5,
            credit_percent: 50,
            min_amount: Money::from_major(1),
            max_amount: Money::from_major(20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("accounts must be between 1 and {MAX_ACCOUNTS}, got {0}")]
    Accounts(u32),
    #[error("credit percentage must be between 0 and 100, got {0}")]
    CreditPercent(u8),
    #[error("amounts must satisfy 0.01 <= min <= max <= {max}, got {min}..{got_max}", max = crate::transaction::MAX_AMOUNT)]
    Amounts { min: Money, got_max: Money },
}

impl GeneratorSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=MAX_ACCOUNTS).contains(&self.accounts) {
            return Err(SettingsError::Accounts(self.accounts));
        }
        if self.credit_percent > 100 {
            return Err(SettingsError::CreditPercent(self.credit_percent));
        }
        if !self.min_amount.is_positive()
            || self.min_amount > self.max_amount
            || self.max_amount > crate::transaction::MAX_AMOUNT
        {
            return Err(SettingsError::Amounts {
                min: self.min_amount,
                got_max: self.max_amount,
            });
        }
        Ok(())
    }
}

/// Makes transactions and keeps the producer's view of every account.
#[derive(Clone, Debug)]
pub struct Generator {
    settings: GeneratorSettings,
    opening: Money,
    book: BTreeMap<AccountId, AccountState>,
    /// The last `sequence` written per account (see [`Transaction::sequence`]).
    sequence: BTreeMap<AccountId, u64>,
}

impl Generator {
    pub fn new(settings: GeneratorSettings, opening: Money) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Generator {
            settings,
            opening,
            book: BTreeMap::new(),
            sequence: BTreeMap::new(),
        })
    }

    pub fn settings(&self) -> &GeneratorSettings {
        &self.settings
    }

    pub fn set_settings(&mut self, settings: GeneratorSettings) -> Result<(), SettingsError> {
        settings.validate()?;
        self.settings = settings;
        Ok(())
    }

    /// Replaces the producer's view with accounts restored from Kafka (after a restart), so the
    /// `new_balance` it writes next agrees with the balance calculator.
    pub fn restore(&mut self, accounts: &BTreeMap<AccountId, AccountState>) {
        self.book = accounts.clone();
        self.sequence.clear();
    }

    /// The producer's view of an account.
    pub fn view(&self, account: AccountId) -> AccountState {
        self.book.get(&account).copied().unwrap_or(AccountState {
            balance: self.opening,
            count: 0,
        })
    }

    /// Takes back a transaction that never reached Kafka (not sent, or its delivery failed), so
    /// the next `new_balance` of its account again agrees with the balance calculator.
    pub fn unrecord(&mut self, account: AccountId, delta: Money) {
        if let Some(state) = self.book.get_mut(&account) {
            state.balance = state.balance.checked_sub(delta).unwrap_or(state.balance);
            state.count = state.count.saturating_sub(1);
        }
    }

    /// A random transaction on a random account, recorded in the producer's view.
    pub fn next<R: Rng + ?Sized>(&mut self, rng: &mut R, timestamp_ms: i64) -> Transaction {
        let s = &self.settings;
        let account = rng.random_range(1..=s.accounts);
        let amount =
            Money::from_minor(rng.random_range(s.min_amount.minor()..=s.max_amount.minor()));
        let mut ty = if rng.random_range(0..100u8) < s.credit_percent {
            TxType::Credit
        } else {
            TxType::Debit
        };
        if ty == TxType::Debit && self.view(account).balance < amount {
            ty = TxType::Credit; // no overdrafts in this bank
        }
        let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        self.make(account, ty, amount, id, timestamp_ms)
    }

    /// A given transaction (e.g. typed in by a presenter), recorded in the producer's view.
    pub fn make(
        &mut self,
        account: AccountId,
        ty: TxType,
        amount: Money,
        id: uuid::Uuid,
        timestamp_ms: i64,
    ) -> Transaction {
        let mut state = self.view(account);
        let delta = if ty == TxType::Credit {
            amount
        } else {
            Money::from_minor(-amount.minor())
        };
        // Amounts are bounded by MAX_AMOUNT, so this saturates only after ~10^9 maximal credits.
        state.balance = state.balance.checked_add(delta).unwrap_or(state.balance);
        state.count += 1;
        self.book.insert(account, state);
        // Never lower than one already written, even after failed deliveries took counts back.
        let sequence = self
            .sequence
            .get(&account)
            .map_or(state.count, |last| (last + 1).max(state.count));
        self.sequence.insert(account, sequence);
        let mut summary = BTreeMap::new();
        summary.insert(Transaction::summary_key(account), state.count);
        Transaction {
            account,
            transaction_id: format!("{account}-{ty}-{id}"),
            transaction_type: ty,
            amount,
            new_balance: Some(state.balance),
            transaction_summary: summary,
            timestamp_ms: Some(timestamp_ms),
            producer_id: None,
            sequence: Some(sequence),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Outcome};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn generated_transactions_reconcile_with_the_ledger() {
        let mut rng = SmallRng::seed_from_u64(7);
        let settings = GeneratorSettings {
            accounts: 4,
            credit_percent: 30,
            ..Default::default()
        };
        let mut g = Generator::new(settings, Money::from_major(100)).unwrap();
        let mut l = Ledger::new(Money::from_major(100));
        for i in 0..5_000 {
            let t = g.next(&mut rng, i);
            let pos = crate::ledger::Position {
                partition: 0,
                offset: i,
            };
            t.validate().unwrap();
            assert!((1..=4).contains(&t.account));
            assert!(
                t.transaction_id
                    .starts_with(&format!("{}-{}-", t.account, t.transaction_type))
            );
            match l.apply(&t, pos) {
                Outcome::Applied {
                    balance,
                    count,
                    producer_agrees,
                } => {
                    assert_eq!(producer_agrees, Some(true));
                    assert!(balance >= Money::ZERO, "no overdraft");
                    assert_eq!(t.producer_count(), Some(count));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_transaction_that_never_arrived_is_taken_back() {
        let mut g = Generator::new(GeneratorSettings::default(), Money::from_major(100)).unwrap();
        let before = g.view(1);
        let t = g.make(
            1,
            TxType::Credit,
            Money::from_minor(250),
            uuid::Uuid::nil(),
            0,
        );
        assert_eq!(g.view(1).balance, Money::from_minor(10_250));
        g.unrecord(t.account, t.delta());
        assert_eq!(g.view(1), before);
        // The next one carries the balance the calculator computes.
        let n = g.make(
            1,
            TxType::Debit,
            Money::from_minor(50),
            uuid::Uuid::nil(),
            0,
        );
        assert_eq!(n.new_balance, Some(Money::from_minor(9_950)));
        assert_eq!(n.producer_count(), Some(1));
    }

    #[test]
    fn settings_are_validated() {
        let ok = GeneratorSettings::default();
        assert!(ok.validate().is_ok());
        assert!(
            GeneratorSettings {
                accounts: 0,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            GeneratorSettings {
                accounts: MAX_ACCOUNTS + 1,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            GeneratorSettings {
                credit_percent: 101,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            GeneratorSettings {
                min_amount: Money::ZERO,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            GeneratorSettings {
                min_amount: Money::from_major(5),
                max_amount: Money::from_major(4),
                ..ok
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn sequence_numbers_never_go_back() {
        let mut g = Generator::new(GeneratorSettings::default(), Money::from_major(100)).unwrap();
        let id = |n: u8| uuid::Builder::from_random_bytes([n; 16]).into_uuid();
        let make = |g: &mut Generator, n| {
            g.make(1, TxType::Credit, Money::from_minor(5), id(n), 0)
                .sequence
                .unwrap()
        };
        assert_eq!(
            (make(&mut g, 1), make(&mut g, 2), make(&mut g, 3)),
            (1, 2, 3)
        );
        // Two deliveries failed: the view's count goes back, the sequence does not.
        g.unrecord(1, Money::from_minor(5));
        g.unrecord(1, Money::from_minor(5));
        assert_eq!(g.view(1).count, 1);
        assert_eq!(make(&mut g, 4), 4);
        assert_eq!(g.view(1).count, 2);
    }
}
