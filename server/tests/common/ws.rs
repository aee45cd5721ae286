//! A WebSocket client for tests (tokio-tungstenite): connect, read frames with bounded waits,
//! send commands.

use std::time::{Duration, Instant};

use cashflow_shared::protocol::ServerMsg;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::TestApp;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(app: &TestApp) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http_addr))
        .await
        .expect("connect");
    ws
}

/// The next server message, within `limit`.
pub async fn next(ws: &mut Ws, limit: Duration) -> ServerMsg {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("timed out waiting for a frame");
        match tokio::time::timeout(left, ws.next())
            .await
            .expect("timed out waiting for a frame")
        {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t).unwrap_or_else(|e| panic!("bad frame {t}: {e}"));
            }
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

/// Skips the hello, snapshots and deltas until a reply (ack, error, reload…) arrives.
pub async fn reply(ws: &mut Ws) -> ServerMsg {
    loop {
        match next(ws, Duration::from_secs(10)).await {
            ServerMsg::Delta(_) | ServerMsg::Snapshot(_) | ServerMsg::Hello { .. } => continue,
            other => return other,
        }
    }
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}
