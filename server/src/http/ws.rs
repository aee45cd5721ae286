//! `/ws`: one task per viewer. It sends a hello and a snapshot, then the hub's deltas; a viewer
//! that falls more than the hub's buffer behind gets a fresh snapshot instead of the frames it
//! missed (so a stalled viewer costs a bounded buffer, never growing memory). Commands are
//! validated, rate-limited, passed to the producer and answered with an ack or an error; the
//! socket stays open either way. Pings every 15 s; a viewer silent for 45 s is dropped.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cashflow_shared::protocol::{PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

mod commands;

use crate::http::app_state::AppState;
use crate::http::hub::Joined;

/// Hard limit on an incoming frame; tungstenite closes a socket that exceeds it. Frames between
/// [`cashflow_shared::command::MAX_CLIENT_FRAME`] and this get an error event and the socket stays open.
const HARD_FRAME_LIMIT: usize = 64 * 1024;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(15);
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Commands per second a viewer may send (burst of twice that).
const COMMANDS_PER_SECOND: f64 = 10.0;

/// Whether a browser page at `origin` may open the socket: same host as the request, or listed.
/// Clients that send no `Origin` (not browsers) are let in; a cross-site page never is.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// Whether a request naming `host` (its `Host` header) may open the socket. A page that a
/// foreign domain re-resolved to this machine (DNS rebinding) sends that domain as both `Host`
/// and `Origin`, which the origin check alone would accept; only IP literals, `localhost` and
/// the hosts of `--allow-origin` pages are real names of this server.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = host_name(host);
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| {
            let a = a.split_once("://").map_or(a.as_str(), |(_, h)| h);
            host_name(a.trim_end_matches('/')).eq_ignore_ascii_case(name)
        })
}

/// `host` of `host:port`, `[v6]:port`, `host` or `[v6]`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

pub async fn handler(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if !host_allowed(header(HOST), &state.allow_origins) {
        debug!(host = ?header(HOST), "WebSocket for a foreign host name refused");
        return (
            StatusCode::FORBIDDEN,
            "this host name may not open the cashflow WebSocket (use an IP address or localhost, \
             or list the page with --allow-origin)",
        )
            .into_response();
    }
    if !origin_allowed(header(ORIGIN), header(HOST), &state.allow_origins) {
        debug!(origin = ?header(ORIGIN), "WebSocket from a foreign origin refused");
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open the cashflow WebSocket",
        )
            .into_response();
    }
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| viewer(socket, state))
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.at).as_secs_f64() * COMMANDS_PER_SECOND)
            .min(2.0 * COMMANDS_PER_SECOND);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn viewer(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let hello = ServerMsg::Hello {
        protocol: PROTOCOL_VERSION,
        server: format!("cashflow {}", env!("CARGO_PKG_VERSION")),
        presenter_required: state.presenter_token.is_some(),
    };
    let mut presenter = state.presenter_token.is_none();
    let send = async |sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
                      text: Utf8Bytes|
           -> bool {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text))).await,
            Ok(Ok(()))
        )
    };
    if !send(&mut sink, hello.to_json().into()).await {
        return;
    }
    let Some(Joined {
        snapshot,
        mut frames,
    }) = state.hub.join().await
    else {
        return;
    };
    if !send(&mut sink, Utf8Bytes::from(&*snapshot)).await {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut last_heard = Instant::now();
    let mut bucket = Bucket {
        tokens: 2.0 * COMMANDS_PER_SECOND,
        at: Instant::now(),
    };
    loop {
        let ok = tokio::select! {
            _ = state.token.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            frame = frames.recv() => match frame {
                Ok(f) => send(&mut sink, Utf8Bytes::from(&*f)).await,
                Err(RecvError::Lagged(n)) => {
                    debug!(skipped = n, "viewer fell behind; sending a snapshot");
                    match state.hub.join().await {
                        Some(j) => {
                            frames = j.frames;
                            send(&mut sink, Utf8Bytes::from(&*j.snapshot)).await
                        }
                        None => false,
                    }
                }
                Err(RecvError::Closed) => false,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    last_heard = Instant::now();
                    let reply = if bucket.take() {
                        commands::handle(&t, &state, &mut presenter).await
                    } else {
                        Some(ServerMsg::Error { id: None, message: format!("too many commands: at most {COMMANDS_PER_SECOND} a second") })
                    };
                    match reply {
                        Some(r) => send(&mut sink, r.to_json().into()).await,
                        None => true,
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    last_heard = Instant::now();
                    send(&mut sink, ServerMsg::Error { id: None, message: "binary frames are not commands; send JSON text".into() }.to_json().into()).await
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_heard = Instant::now();
                    true
                }
                Some(Ok(Message::Close(_))) | None => false,
                Some(Err(e)) => {
                    debug!(%e, "viewer socket error");
                    false
                }
            },
            _ = ping.tick() => {
                last_heard.elapsed() < SILENCE_LIMIT
                    && matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default()))).await, Ok(Ok(())))
            }
        };
        if !ok {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
