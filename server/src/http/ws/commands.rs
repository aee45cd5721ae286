//! A viewer's command frames: parsed, the presenter's login checked, validated and routed to
//! the target that carries it out (the producer, the calculator's group, a lesson, the demo's
//! reset); the reply is an ack, the new state, or an error saying why not.

use cashflow_shared::command::{
    self, CalculatorCommand, ClientMsg, Command, DemoCommand, Routed, SessionCommand,
};
use cashflow_shared::protocol::{PROTOCOL_VERSION, ServerMsg};

use crate::http::app_state::AppState;

/// One command frame → the reply to send (none for a matching hello).
pub(super) async fn handle(
    text: &str,
    state: &AppState,
    presenter: &mut bool,
) -> Option<ServerMsg> {
    let token = state.presenter_token.as_deref();
    let ClientMsg { id, command } = match command::parse_client(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(ServerMsg::Error {
                id: None,
                message: e.to_string(),
            });
        }
    };
    if let Command::Login { token: given } = &command {
        return Some(match token {
            None => ServerMsg::Error {
                id,
                message: "this server has no presenter token: every page may send commands".into(),
            },
            Some(t) if constant_time_eq(t.as_bytes(), given.as_bytes()) => {
                *presenter = true;
                ServerMsg::Presenter { id }
            }
            Some(_) => ServerMsg::Error {
                id,
                message: "wrong presenter token".into(),
            },
        });
    }
    if !*presenter && !matches!(command, Command::Hello { .. }) {
        return Some(ServerMsg::Error {
            id,
            message: "read-only: log in as presenter to send commands".into(),
        });
    }
    let routed = match command.route() {
        Ok(r) => r,
        Err(e) => {
            return Some(ServerMsg::Error {
                id,
                message: e.to_string(),
            });
        }
    };
    match routed {
        Routed::Session(SessionCommand::Login { .. }) => None, // answered above
        Routed::Session(SessionCommand::Hello { protocol }) if protocol == PROTOCOL_VERSION => None,
        Routed::Session(SessionCommand::Hello { protocol }) => Some(ServerMsg::Reload {
            reason: format!(
                "this page speaks protocol {protocol}, the server {PROTOCOL_VERSION}: reload the page"
            ),
        }),
        Routed::Calculator(c) => Some(calculator_command(c, state, id).await),
        Routed::Lesson(c) => Some(state.lessons.command(id, c).await),
        Routed::Demo(DemoCommand::Reset { topic }) => Some(match state.reset.start(&topic).await {
            Ok(()) => ServerMsg::Reset { id },
            Err(e) => ServerMsg::Error {
                id,
                message: e.to_string(),
            },
        }),
        Routed::Producer(c) => Some(match state.producer.send(c).await {
            Ok((generator, transaction)) => ServerMsg::Ack {
                id,
                generator,
                transaction,
            },
            Err(e) => ServerMsg::Error {
                id,
                message: e.to_string(),
            },
        }),
    }
}

/// A command for the balance calculator's group → the group as it is now, or why not.
async fn calculator_command(
    command: CalculatorCommand,
    state: &AppState,
    id: Option<u64>,
) -> ServerMsg {
    let calculator = &state.calculator;
    let done = match command {
        CalculatorCommand::AddMember => calculator.add().await.map(|_| ()),
        CalculatorCommand::RemoveMember => calculator.remove().await.map(|_| ()),
        CalculatorCommand::Pause => {
            calculator.set_paused(true);
            Ok(())
        }
        CalculatorCommand::Resume => {
            calculator.set_paused(false);
            Ok(())
        }
    };
    match done {
        Ok(()) => ServerMsg::Calculator {
            id,
            group: state.shared.group().status(),
        },
        Err(e) => ServerMsg::Error {
            id,
            message: e.to_string(),
        },
    }
}

/// Compares without stopping at the first differing byte, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
