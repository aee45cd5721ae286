//! A [`Command`] sorted by who carries it out. The wire keeps one flat form (`{"cmd": …}`,
//! what pages, scripts and the original's clients send); the server routes each frame once,
//! and every target then matches only its own commands, with the values already checked
//! (a [`Rate`], not an `Option<f64>` that might be out of range).

use crate::money::Money;
use crate::naive::Delivery;
use crate::ordering::KeyStrategy;
use crate::poison::Poison;
use crate::transaction::{AccountId, TxType};

use super::{Command, CommandError, Rate};

/// A valid command, by target.
#[derive(Clone, Debug, PartialEq)]
pub enum Routed {
    /// The connection itself.
    Session(SessionCommand),
    Producer(ProducerCommand),
    Calculator(CalculatorCommand),
    Lesson(LessonCommand),
    /// The whole demo.
    Demo(DemoCommand),
}

#[derive(Clone, Debug, PartialEq)]
pub enum SessionCommand {
    Hello { protocol: u32 },
    Login { token: String },
}

/// The generator's and the producer's commands.
#[derive(Clone, Debug, PartialEq)]
pub enum ProducerCommand {
    Start,
    Pause,
    SetRate(Rate),
    SetAccounts(u32),
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
    Burst(u64),
    SetKeys(KeyStrategy),
    Inject(Poison),
    SetMaxLag(Option<u64>),
    SetBatching {
        linger_ms: u32,
        batch_size: u32,
    },
}

/// The balance calculator's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalculatorCommand {
    AddMember,
    RemoveMember,
    Pause,
    Resume,
}

/// A command of one lesson with machinery of its own in the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LessonCommand {
    Replay(ReplayCommand),
    Naive(NaiveCommand),
    Outage(OutageCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayCommand {
    Start,
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaiveCommand {
    Start(Delivery),
    Crash,
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageCommand {
    StopBroker { seconds: u32 },
    StopNode(u8),
    StartNode(u8),
}

#[derive(Clone, Debug, PartialEq)]
pub enum DemoCommand {
    /// `topic` must name the demo's topic (the confirmation).
    Reset { topic: String },
}

impl Command {
    /// [Validates](Command::validate) the command and sorts it by target.
    pub fn route(self) -> Result<Routed, CommandError> {
        use Routed as R;
        self.validate()?;
        let p = |c| Ok(R::Producer(c));
        let lesson = |c| Ok(R::Lesson(c));
        match self {
            Command::Hello { protocol } => Ok(R::Session(SessionCommand::Hello { protocol })),
            Command::Login { token } => Ok(R::Session(SessionCommand::Login { token })),
            Command::Start => p(ProducerCommand::Start),
            Command::Pause => p(ProducerCommand::Pause),
            Command::SetRate { rate } => p(ProducerCommand::SetRate(Rate::from_option(rate)?)),
            Command::SetAccounts { accounts } => p(ProducerCommand::SetAccounts(accounts)),
            Command::SetMix { credit_percent } => p(ProducerCommand::SetMix { credit_percent }),
            Command::SetAmounts { min, max } => p(ProducerCommand::SetAmounts { min, max }),
            Command::Manual {
                account,
                transaction_type,
                amount,
            } => p(ProducerCommand::Manual {
                account,
                transaction_type,
                amount,
            }),
            Command::Burst { count } => p(ProducerCommand::Burst(count)),
            Command::SetKeys { keys } => p(ProducerCommand::SetKeys(keys)),
            Command::Inject { poison } => p(ProducerCommand::Inject(poison)),
            Command::SetMaxLag { max_lag } => p(ProducerCommand::SetMaxLag(max_lag)),
            Command::SetBatching {
                linger_ms,
                batch_size,
            } => p(ProducerCommand::SetBatching {
                linger_ms,
                batch_size,
            }),
            Command::AddMember => Ok(R::Calculator(CalculatorCommand::AddMember)),
            Command::RemoveMember => Ok(R::Calculator(CalculatorCommand::RemoveMember)),
            Command::PauseConsumption => Ok(R::Calculator(CalculatorCommand::Pause)),
            Command::ResumeConsumption => Ok(R::Calculator(CalculatorCommand::Resume)),
            Command::StartReplay => lesson(LessonCommand::Replay(ReplayCommand::Start)),
            Command::StopReplay => lesson(LessonCommand::Replay(ReplayCommand::Stop)),
            Command::StartNaive { delivery } => {
                lesson(LessonCommand::Naive(NaiveCommand::Start(delivery)))
            }
            Command::CrashNaive => lesson(LessonCommand::Naive(NaiveCommand::Crash)),
            Command::StopNaive => lesson(LessonCommand::Naive(NaiveCommand::Stop)),
            Command::StopBroker { seconds } => {
                lesson(LessonCommand::Outage(OutageCommand::StopBroker { seconds }))
            }
            Command::StopNode { node } => {
                lesson(LessonCommand::Outage(OutageCommand::StopNode(node)))
            }
            Command::StartNode { node } => {
                lesson(LessonCommand::Outage(OutageCommand::StartNode(node)))
            }
            Command::ResetDemo { topic } => Ok(R::Demo(DemoCommand::Reset { topic })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_client;

    fn routed(json: &str) -> Result<Routed, CommandError> {
        parse_client(json)?.command.route()
    }

    #[test]
    fn each_command_goes_to_its_target() {
        assert_eq!(
            routed(r#"{"cmd":"set_rate","rate":null}"#),
            Ok(Routed::Producer(ProducerCommand::SetRate(Rate::Max)))
        );
        assert_eq!(
            routed(r#"{"cmd":"pause_consumption"}"#),
            Ok(Routed::Calculator(CalculatorCommand::Pause))
        );
        assert_eq!(
            routed(r#"{"cmd":"start_naive","delivery":"at_most_once"}"#),
            Ok(Routed::Lesson(LessonCommand::Naive(NaiveCommand::Start(
                Delivery::AtMostOnce
            ))))
        );
        assert_eq!(
            routed(r#"{"cmd":"stop_node","node":2}"#),
            Ok(Routed::Lesson(LessonCommand::Outage(
                OutageCommand::StopNode(2)
            )))
        );
        assert_eq!(
            routed(r#"{"cmd":"reset_demo","topic":"t"}"#),
            Ok(Routed::Demo(DemoCommand::Reset { topic: "t".into() }))
        );
        assert_eq!(
            routed(r#"{"cmd":"hello","protocol":3}"#),
            Ok(Routed::Session(SessionCommand::Hello { protocol: 3 }))
        );
    }

    #[test]
    fn an_invalid_command_is_not_routed() {
        assert_eq!(
            routed(r#"{"cmd":"set_rate","rate":0}"#),
            Err(CommandError::Rate(0.0))
        );
        assert_eq!(
            routed(r#"{"cmd":"burst","count":0}"#),
            Err(CommandError::Burst(0))
        );
        assert_eq!(
            routed(r#"{"cmd":"stop_node","node":9}"#),
            Err(CommandError::Node(9))
        );
    }
}
