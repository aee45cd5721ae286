//! Every command a page (or a script on the WebSocket, or a test) gives the server, defined
//! once: the wire form, its validation with a typed error, and the [`Rate`] the command line
//! shares. The page validates before sending (and says why at once); the server validates again,
//! since any client can write to the socket, and [routes](Command::route) it: each target
//! (producer, calculator, lesson, demo) then handles only its own [`Routed`] commands.

use serde::{Deserialize, Serialize};

mod routed;

pub use routed::{
    CalculatorCommand, DemoCommand, LessonCommand, NaiveCommand, OutageCommand, ProducerCommand,
    ReplayCommand, Routed, SessionCommand,
};

use crate::generator::{MAX_ACCOUNTS, SettingsError};
use crate::money::Money;
use crate::ordering::KeyStrategy;
use crate::outage::{MAX_LOCAL_NODES, MAX_OUTAGE_SECONDS, MIN_OUTAGE_SECONDS};
use crate::poison::Poison;
use crate::transaction::{AccountId, MAX_AMOUNT, TxType};

/// Largest frame the server accepts from a page.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// Slowest and fastest paced rates (transactions per second); "max" is unpaced.
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most transactions one burst asks for, and most waiting to be sent.
pub const MAX_BURST: u64 = 1_000_000;
/// Bounds of the back-pressure and batching settings.
pub const MAX_MAX_LAG: u64 = 10_000_000;
pub const MAX_LINGER_MS: u32 = 5_000;
pub const MIN_BATCH_BYTES: u32 = 1_024;
pub const MAX_BATCH_BYTES: u32 = 16 * 1024 * 1024;

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("frame too large: {0} bytes (limit {MAX_CLIENT_FRAME})")]
    TooLarge(usize),
    #[error("not a command: {0}")]
    NotACommand(String),
    #[error("rate must be between {MIN_RATE} and {MAX_RATE} per second, or \"max\"; got {0}")]
    Rate(f64),
    #[error("{0:?} is not a number or \"max\"")]
    RateText(String),
    #[error("burst must be between 1 and {MAX_BURST}, got {0}")]
    Burst(u64),
    #[error("account must be between 1 and {MAX_ACCOUNTS}, got {0}")]
    Account(AccountId),
    #[error("amount must be between 0.01 and {MAX_AMOUNT}, got {0}")]
    Amount(Money),
    #[error("max lag must be between 1 and {MAX_MAX_LAG} records, or off; got {0}")]
    MaxLag(u64),
    #[error("linger.ms must be between 0 and {MAX_LINGER_MS}, got {0}")]
    Linger(u32),
    #[error("batch size must be between {MIN_BATCH_BYTES} and {MAX_BATCH_BYTES} bytes, got {0}")]
    BatchSize(u32),
    #[error("an outage lasts {MIN_OUTAGE_SECONDS} to {MAX_OUTAGE_SECONDS} seconds, got {0}")]
    OutageSeconds(u32),
    #[error("cashflow runs nodes 1 to {MAX_LOCAL_NODES}, got node {0}")]
    Node(u8),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// How fast the generator produces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    /// As fast as Kafka takes them.
    Max,
}

impl Rate {
    /// `"max"` or a number of transactions per second (the command line's `--rate`).
    pub fn parse(s: &str) -> Result<Rate, CommandError> {
        if s.trim().eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| CommandError::RateText(s.to_owned()))?;
        Rate::per_second(v)
    }

    pub fn per_second(v: f64) -> Result<Rate, CommandError> {
        if (MIN_RATE..=MAX_RATE).contains(&v) {
            Ok(Rate::PerSecond(v))
        } else {
            Err(CommandError::Rate(v))
        }
    }

    /// The wire form: `None` is "max".
    pub fn from_option(rate: Option<f64>) -> Result<Rate, CommandError> {
        rate.map_or(Ok(Rate::Max), Rate::per_second)
    }

    pub fn as_option(self) -> Option<f64> {
        match self {
            Rate::PerSecond(v) => Some(v),
            Rate::Max => None,
        }
    }
}

/// A command, as the page sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Hello {
        protocol: u32,
    },
    /// Presenter login, when the server has a presenter token.
    Login {
        token: String,
    },
    Start,
    Pause,
    /// `rate: null` is "as fast as possible".
    SetRate {
        rate: Option<f64>,
    },
    SetAccounts {
        accounts: u32,
    },
    SetMix {
        credit_percent: u8,
    },
    SetAmounts {
        min: Money,
        max: Money,
    },
    Manual {
        account: AccountId,
        transaction_type: TxType,
        amount: Money,
    },
    /// Send `count` random transactions as fast as possible, whether running or paused.
    Burst {
        count: u64,
    },
    /// How the producer keys its records (the keys-and-ordering lesson).
    SetKeys {
        keys: KeyStrategy,
    },
    /// Writes a malformed record, or the last transaction again (the poison-pill lesson).
    Inject {
        poison: Poison,
    },
    /// The producer waits while the calculator is more than `max_lag` records behind it
    /// (`null`: never), the back-pressure lesson.
    SetMaxLag {
        max_lag: Option<u64>,
    },
    /// The producer's batching (`linger.ms`, `batch.size`): the producer is created again.
    SetBatching {
        linger_ms: u32,
        batch_size: u32,
    },
    /// A fresh calculator rebuilds the balances from the log start (the replay lesson).
    StartReplay,
    StopReplay,
    /// Starts the naive calculator beside the exact one (the delivery-semantics lesson), or
    /// switches the running one to another delivery.
    StartNaive {
        delivery: crate::naive::Delivery,
    },
    /// Crashes it between its two steps on its next batch with records; it restarts.
    CrashNaive,
    /// Stops it and deletes its group and saved balances.
    StopNaive,
    /// A fresh topic and groups: generation paused and delivered, the lessons' consumers
    /// stopped, the topic deleted and created again, every check started over. `topic` must
    /// name the demo's topic: the confirmation, checked by the server.
    ResetDemo {
        topic: String,
    },
    /// Stops the managed broker for `seconds`, then starts it again (the outage lesson).
    StopBroker {
        seconds: u32,
    },
    /// Stops one node of the 3-node cluster cashflow runs (`--local-brokers 3`) until
    /// [`Command::StartNode`]: its partitions' leaders move to in-sync replicas (the
    /// replication lesson). Refused while another node is down (the KRaft quorum).
    StopNode {
        node: u8,
    },
    StartNode {
        node: u8,
    },
    /// One more member in the balance calculator's group (the broker rebalances).
    AddMember,
    /// One member fewer (the newest leaves; the first stays).
    RemoveMember,
    /// Stop the calculator's fetching (members stay in the group) or resume it.
    PauseConsumption,
    ResumeConsumption,
}

impl Command {
    /// Whether the command is acceptable on its own (ranges, known accounts, amounts). The
    /// settings it changes are checked again against the others where they are applied (e.g.
    /// amounts `min ≤ max`).
    pub fn validate(&self) -> Result<(), CommandError> {
        match self {
            Command::SetRate { rate } => Rate::from_option(*rate).map(|_| ()),
            Command::SetAccounts { accounts } if !(1..=MAX_ACCOUNTS).contains(accounts) => {
                Err(SettingsError::Accounts(*accounts).into())
            }
            Command::SetMix { credit_percent } if *credit_percent > 100 => {
                Err(SettingsError::CreditPercent(*credit_percent).into())
            }
            Command::SetAmounts { min, max }
                if !min.is_positive() || min > max || *max > MAX_AMOUNT =>
            {
                Err(SettingsError::Amounts {
                    min: *min,
                    got_max: *max,
                }
                .into())
            }
            Command::Burst { count } if *count == 0 || *count > MAX_BURST => {
                Err(CommandError::Burst(*count))
            }
            Command::Manual { account, .. } if !(1..=MAX_ACCOUNTS).contains(account) => {
                Err(CommandError::Account(*account))
            }
            Command::Manual { amount, .. } if !amount.is_positive() || *amount > MAX_AMOUNT => {
                Err(CommandError::Amount(*amount))
            }
            Command::SetMaxLag { max_lag: Some(n) } if !(1..=MAX_MAX_LAG).contains(n) => {
                Err(CommandError::MaxLag(*n))
            }
            Command::SetBatching { linger_ms, .. } if *linger_ms > MAX_LINGER_MS => {
                Err(CommandError::Linger(*linger_ms))
            }
            Command::SetBatching { batch_size, .. }
                if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES).contains(batch_size) =>
            {
                Err(CommandError::BatchSize(*batch_size))
            }
            Command::StopBroker { seconds }
                if !(MIN_OUTAGE_SECONDS..=MAX_OUTAGE_SECONDS).contains(seconds) =>
            {
                Err(CommandError::OutageSeconds(*seconds))
            }
            Command::StopNode { node } | Command::StartNode { node }
                if !(1..=MAX_LOCAL_NODES).contains(node) =>
            {
                Err(CommandError::Node(*node))
            }
            _ => Ok(()),
        }
    }
}

/// A command frame: the command and an optional `id` the reply echoes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientMsg {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub command: Command,
}

/// Decodes a page's frame (not yet [validated](Command::validate)).
pub fn parse_client(text: &str) -> Result<ClientMsg, CommandError> {
    if text.len() > MAX_CLIENT_FRAME {
        return Err(CommandError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| CommandError::NotACommand(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_ids() {
        let m = parse_client(r#"{"cmd":"set_rate","rate":5,"id":7}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg {
                id: Some(7),
                command: Command::SetRate { rate: Some(5.0) }
            }
        );
        let m = parse_client(
            r#"{"cmd":"manual","account":2,"transaction_type":"Debit","amount":12.34}"#,
        )
        .unwrap();
        assert_eq!(
            m.command,
            Command::Manual {
                account: 2,
                transaction_type: TxType::Debit,
                amount: Money::from_minor(1234)
            }
        );
        assert_eq!(
            parse_client(r#"{"cmd":"pause"}"#).unwrap().command,
            Command::Pause
        );
    }

    #[test]
    fn bad_commands_say_why() {
        assert!(
            parse_client("nope")
                .unwrap_err()
                .to_string()
                .contains("not a command")
        );
        assert!(
            parse_client(r#"{"cmd":"explode"}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown variant")
        );
        assert!(parse_client(r#"{"cmd":"set_accounts","accounts":-1}"#).is_err());
        assert!(
            parse_client(r#"{"cmd":"manual","account":1,"transaction_type":"Refund","amount":1}"#)
                .is_err()
        );
        assert!(
            parse_client(&"x".repeat(MAX_CLIENT_FRAME + 1))
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn rates_parse_and_are_bounded() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse(" MAX "), Ok(Rate::Max));
        assert_eq!(Rate::parse("0.1"), Ok(Rate::PerSecond(0.1)));
        assert_eq!(Rate::parse("0"), Err(CommandError::Rate(0.0)));
        assert!(Rate::parse("2000000").is_err());
        assert_eq!(
            Rate::parse("fast").unwrap_err().to_string(),
            "\"fast\" is not a number or \"max\""
        );
        assert!(Rate::parse("NaN").is_err());
        assert_eq!(Rate::from_option(None), Ok(Rate::Max));
        assert_eq!(
            Rate::from_option(Some(2.0)).map(Rate::as_option),
            Ok(Some(2.0))
        );
    }

    #[test]
    fn commands_are_validated_with_typed_errors() {
        let ok = [
            Command::SetRate { rate: None },
            Command::SetRate { rate: Some(0.5) },
            Command::SetAccounts {
                accounts: MAX_ACCOUNTS,
            },
            Command::SetMix {
                credit_percent: 100,
            },
            Command::Burst { count: MAX_BURST },
            Command::AddMember,
        ];
        for c in ok {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
        let m = Money::from_minor;
        let bad = [
            (Command::SetRate { rate: Some(0.0) }, "rate must be between"),
            (
                Command::SetRate {
                    rate: Some(f64::NAN),
                },
                "rate must be between",
            ),
            (
                Command::SetAccounts { accounts: 0 },
                "accounts must be between 1 and",
            ),
            (
                Command::SetMix {
                    credit_percent: 101,
                },
                "credit percentage",
            ),
            (
                Command::SetAmounts {
                    min: m(500),
                    max: m(100),
                },
                "amounts must satisfy",
            ),
            (
                Command::SetAmounts {
                    min: m(0),
                    max: m(100),
                },
                "amounts must satisfy",
            ),
            (Command::Burst { count: 0 }, "burst must be between 1 and"),
            (
                Command::StopBroker { seconds: 0 },
                "an outage lasts 1 to 120 seconds",
            ),
            (Command::StopNode { node: 0 }, "nodes 1 to 3, got node 0"),
            (Command::StartNode { node: 4 }, "nodes 1 to 3, got node 4"),
            (
                Command::SetMaxLag { max_lag: Some(0) },
                "max lag must be between 1",
            ),
            (
                Command::SetBatching {
                    linger_ms: 6_000,
                    batch_size: 65_536,
                },
                "linger.ms must be between 0 and 5000",
            ),
            (
                Command::SetBatching {
                    linger_ms: 5,
                    batch_size: 10,
                },
                "batch size must be between 1024",
            ),
            (
                Command::Burst {
                    count: MAX_BURST + 1,
                },
                "burst must be between 1 and",
            ),
            (
                Command::Manual {
                    account: 0,
                    transaction_type: TxType::Credit,
                    amount: m(1),
                },
                "account must be between",
            ),
            (
                Command::Manual {
                    account: 1,
                    transaction_type: TxType::Debit,
                    amount: m(-1),
                },
                "amount must be between",
            ),
        ];
        for (c, why) in bad {
            let e = c.validate().expect_err("refused");
            assert!(e.to_string().contains(why), "{c:?}: {e}");
        }
        assert!(matches!(
            Command::Start.route(),
            Ok(Routed::Producer(ProducerCommand::Start))
        ));
    }
}
