//! How the rest of cashflow commands the producer: a [`ProducerHandle`] that takes a
//! [`ProducerCommand`] (or a wire [`Command`], validated and routed first) and waits for the
//! producer task's answer, or the [`ProducerError`] why not.

use cashflow_shared::Transaction;
use cashflow_shared::command::{Command, CommandError, ProducerCommand, Routed};
use cashflow_shared::protocol::GeneratorStatus;
use tokio::sync::{mpsc, oneshot};

/// Why a producer command was not carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Invalid(#[from] CommandError),
    #[error("not a producer command: the producer carries out generation commands only")]
    NotForProducer,
    #[error(
        "Kafka's send queue is full (the broker is slow or unreachable): the transaction was not sent; try again in a moment"
    )]
    QueueFull,
    #[error(
        "not connected to Kafka yet: a manual transaction has to wait until the balances are restored"
    )]
    NotRestored,
    #[error("the producer has stopped")]
    Stopped,
    #[error(
        "nothing to send again: no transaction produced yet, or the last one had no key (a copy could land on another partition, where it would not be seen as a duplicate)"
    )]
    NothingToRepeat,
    #[error("Kafka refused the record: {0}")]
    Kafka(String),
}

/// What a command left: the generator's settings, and the transaction a `manual` one made.
pub type Done = (GeneratorStatus, Option<Transaction>);

pub(super) type Reply = oneshot::Sender<Result<Done, ProducerError>>;
/// Commands as the producer task receives them.
pub type Commands = mpsc::Receiver<(ProducerCommand, Reply)>;

/// Sends commands to the running producer.
#[derive(Clone)]
pub struct ProducerHandle {
    pub(super) tx: mpsc::Sender<(ProducerCommand, Reply)>,
}

impl ProducerHandle {
    /// Has the producer carry out `cmd`.
    pub async fn send(&self, cmd: impl ForProducer) -> Result<Done, ProducerError> {
        let cmd = cmd.for_producer()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .await
            .map_err(|_| ProducerError::Stopped)?;
        rx.await.map_err(|_| ProducerError::Stopped)?
    }
}

/// A producer command, or a wire command that should be one.
pub trait ForProducer {
    fn for_producer(self) -> Result<ProducerCommand, ProducerError>;
}

impl ForProducer for ProducerCommand {
    fn for_producer(self) -> Result<ProducerCommand, ProducerError> {
        Ok(self)
    }
}

impl ForProducer for Command {
    /// Validated and routed: another target's command is refused.
    fn for_producer(self) -> Result<ProducerCommand, ProducerError> {
        match self.route()? {
            Routed::Producer(c) => Ok(c),
            _ => Err(ProducerError::NotForProducer),
        }
    }
}
