//! The WebSocket to `/ws` (gloo-net): connect, feed the reducer, render once per animation
//! frame, reconnect with back-off (gloo-timers).

use std::time::Duration;

use cashflow_shared::command::{ClientMsg, Command};
use cashflow_shared::dashboard::{Dashboard, Notice};
use cashflow_shared::protocol::{PROTOCOL_VERSION, ServerMsg};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::Message;
use gloo_net::websocket::futures::WebSocket;
use leptos::prelude::*;

mod frames;
mod part;

use frames::{FrameStats, schedule_render};
pub use part::Part;

/// Commands queued for the socket at most; a page cannot pile frames up.
const OUTBOX: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conn {
    Connecting,
    Open,
    Retrying { attempt: u32, in_secs: f64 },
}

/// Everything the views share. `dash` is not reactive: messages update it freely and bump
/// `frame` at most once per animation frame. Views never read either: each takes the part it
/// shows as a [`Part`] ([`Ctx::select`]), computed again once a frame, so a view is redrawn only when
/// its part changed, not whenever any message arrived.
#[derive(Clone, Copy)]
pub struct Ctx {
    dash: StoredValue<Dashboard>,
    frame: RwSignal<u64>,
    /// Bumped only when the charted history changes (a new sample about once a second, or a
    /// snapshot): what [`Ctx::select_history`] recomputes on.
    history: RwSignal<u64>,
    history_dirty: StoredValue<bool>,
    /// This page may send commands (no login needed, or logged in).
    presenter: Memo<bool>,
    pub conn: RwSignal<Conn>,
    /// The account whose path (key → partition → member) the page highlights: pinned by a
    /// click or tap, or shown while the pointer is over its bar.
    pub follow: RwSignal<Option<cashflow_shared::AccountId>>,
    pub hover: RwSignal<Option<cashflow_shared::AccountId>>,
    pub notice: RwSignal<Option<Notice>>,
    /// The open socket's outbox (`None` while not connected).
    socket: StoredValue<Option<mpsc::Sender<String>>, LocalStorage>,
    dirty: StoredValue<bool>,
    attempt: StoredValue<u32>,
    next_id: StoredValue<u64>,
    /// The presenter token this page logged in with, sent again after a reconnect.
    pub token: StoredValue<Option<String>>,
    /// Render work per frame, published as `window.__cashflow_stats`.
    frames: StoredValue<FrameStats>,
}

impl Ctx {
    pub fn new() -> Ctx {
        let dash = StoredValue::new(Dashboard::default());
        let frame = RwSignal::new(0);
        Ctx {
            dash,
            frame,
            history: RwSignal::new(0),
            history_dirty: StoredValue::new(false),
            presenter: Memo::new(move |_| {
                frame.track();
                dash.with_value(|d| d.presenter)
            }),
            conn: RwSignal::new(Conn::Connecting),
            follow: RwSignal::new(None),
            hover: RwSignal::new(None),
            notice: RwSignal::new(None),
            socket: StoredValue::new_local(None),
            dirty: StoredValue::new(false),
            attempt: StoredValue::new(0),
            next_id: StoredValue::new(1),
            frames: StoredValue::new(FrameStats::default()),
            token: StoredValue::new(None),
        }
    }

    /// One part of the dashboard: `part` runs once a frame (after messages came), and what
    /// reads the [`Part`] runs again only when the part is not what it was.
    pub fn select<T>(&self, part: impl Fn(&Dashboard) -> T + Send + Sync + 'static) -> Part<T>
    where
        T: PartialEq + Send + Sync + 'static,
    {
        Part::new(self.dash, self.frame, Box::new(part))
    }

    /// [`Ctx::select`] for what is drawn from the charted history: `part` runs only when a
    /// sample arrived (about once a second), not on every frame.
    pub fn select_history<T>(
        &self,
        part: impl Fn(&Dashboard) -> T + Send + Sync + 'static,
    ) -> Part<T>
    where
        T: PartialEq + Send + Sync + 'static,
    {
        Part::new(self.dash, self.history, Box::new(part))
    }

    /// Reads the dashboard as it is now, tracking nothing: for event handlers, and for views
    /// made once from a record that does not change.
    pub fn read<T>(&self, f: impl FnOnce(&Dashboard) -> T) -> T {
        self.dash.with_value(f)
    }

    /// The account highlighted now: the one under the pointer, else the pinned one.
    pub fn highlighted(&self) -> Option<cashflow_shared::AccountId> {
        self.hover.get().or_else(|| self.follow.get())
    }

    /// Whether this page may command (a presenter, or no presenter token on the server):
    /// presenter-only actions are hidden otherwise.
    pub fn is_presenter(&self) -> bool {
        self.presenter.get()
    }

    /// Connected and allowed to send commands.
    pub fn can_command(&self) -> bool {
        self.connected() && self.presenter.get()
    }

    pub fn connected(&self) -> bool {
        self.conn.get() == Conn::Open
    }

    /// Sends a command; returns its id, or `None` when not connected.
    pub fn send(&self, command: Command) -> Option<u64> {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let text = serde_json::to_string(&ClientMsg {
            id: Some(id),
            command,
        })
        .ok()?;
        self.socket
            .with_value(|s| s.clone())
            .and_then(|mut tx| tx.try_send(text).ok())
            .map(|_| id)
    }
}

/// The presenter token of a presenter link (`#presenter=TOKEN`, which the server prints beyond
/// loopback), taken out of the address bar at once so it is not left on a projected screen or
/// in a bookmark. A fragment is never sent to a server, so the token reaches no log.
pub fn presenter_link_token() -> Option<String> {
    let loc = window().location();
    let hash = loc.hash().ok()?;
    let token = cashflow_shared::protocol::presenter_token_in_fragment(&hash)?;
    if let (Ok(history), Ok(path), Ok(search)) = (window().history(), loc.pathname(), loc.search())
    {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("{path}{search}")),
        );
    }
    Some(token)
}

fn ws_url() -> String {
    let loc = window().location();
    let proto = if loc.protocol().as_deref() == Ok("https:") {
        "wss"
    } else {
        "ws"
    };
    format!(
        "{proto}://{}/ws",
        loc.host().unwrap_or_else(|_| "127.0.0.1:8080".into())
    )
}

/// Keeps one socket open for the page's lifetime: connect, read until it closes, wait, again.
pub fn connect(ctx: Ctx) {
    leptos::task::spawn_local(async move {
        loop {
            ctx.conn.set(Conn::Connecting);
            if let Ok(ws) = WebSocket::open(&ws_url()) {
                session(ctx, ws).await;
            }
            ctx.socket.set_value(None);
            let attempt = ctx.attempt.get_value() + 1;
            ctx.attempt.set_value(attempt);
            // 0.5 s, 1 s, 2 s, ... up to 8 s: a restarted server is found within seconds.
            let delay = Duration::from_millis(500 * (1u64 << (attempt - 1).min(4)));
            ctx.conn.set(Conn::Retrying {
                attempt,
                in_secs: delay.as_secs_f64(),
            });
            gloo_timers::future::sleep(delay).await;
        }
    });
}

/// One connection: say hello (queued until the socket opens), then a writer task sends the
/// outbox while this reads until the socket closes. The page counts as connected (and the
/// back-off starts over) only once the server's first frame arrives: a socket that failed to
/// open also "accepts" the hello.
async fn session(ctx: Ctx, ws: WebSocket) {
    let (mut write, mut read) = ws.split();
    let hello = serde_json::to_string(&ClientMsg {
        id: None,
        command: Command::Hello {
            protocol: PROTOCOL_VERSION,
        },
    })
    .unwrap_or_default();
    if write.send(Message::Text(hello)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOX);
    ctx.socket.set_value(Some(tx));
    leptos::task::spawn_local(async move {
        // Ends when the session drops the outbox's sender (or the socket refuses a frame).
        while let Some(text) = rx.next().await {
            if write.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    });
    let mut first = true;
    while let Some(Ok(msg)) = read.next().await {
        if first {
            first = false;
            ctx.attempt.set_value(0);
            ctx.conn.set(Conn::Open);
            // A notice answered a command of the connection before (the server may have
            // restarted since): it no longer says anything about this one.
            ctx.notice.set(None);
            if let Some(token) = ctx.token.get_value() {
                ctx.send(Command::Login { token });
            }
        }
        if let Message::Text(text) = msg {
            on_text(ctx, &text);
        }
    }
}

fn on_text(ctx: Ctx, text: &str) {
    let Ok(msg) = serde_json::from_str::<ServerMsg>(text) else {
        return;
    };
    if matches!(&msg, ServerMsg::Snapshot(_))
        || matches!(&msg, ServerMsg::Delta(d) if d.sample.is_some())
    {
        ctx.history_dirty.set_value(true);
    }
    if let Some(n) = ctx.dash.try_update_value(|d| d.apply(msg)).flatten() {
        ctx.notice.set(Some(n));
    }
    schedule_render(ctx);
}
