//! HTTP: `/health`, the JSON API and the browser app.

use std::path::Path;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{any, get};
use cashflow_shared::AccountId;
use cashflow_shared::api::{
    BALANCES_PAGE, Balances, Health, LogLine, MAX_BALANCES_PAGE, ProducerStats, TopicView,
};
use serde::Deserialize;
use tower_http::services::{ServeDir, ServeFile};

pub mod app_state;
pub mod hub;
pub mod metrics;
pub mod presenter;
pub mod ws;

pub use app_state::AppState;

pub fn router(state: AppState, web_dir: &Path) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/balances", get(balances))
        .route("/api/producer", get(producer))
        .route("/api/recent", get(recent))
        .route("/api/topic", get(topic))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/lessons", get(lessons))
        // Any other API path is a JSON 404, not the page's HTML.
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        .route("/ws", get(crate::http::ws::handler))
        .with_state(state);
    let index = web_dir.join("index.html");
    if index.is_file() {
        // The build's brotli and gzip copies to browsers that accept them (a class of 30
        // loading the page at once shares one Wi-Fi), and the hashed files cached for good.
        let page = ServeDir::new(web_dir)
            .precompressed_br()
            .precompressed_gzip()
            .fallback(
                ServeFile::new(index)
                    .precompressed_br()
                    .precompressed_gzip(),
            );
        api.fallback_service(
            Router::new()
                .fallback_service(page)
                .layer(axum::middleware::map_response(cache_control)),
        )
    } else {
        api.fallback(get(not_built))
    }
}

/// Whether a page file's name carries its content's hash (`name-<hex>.js`, `…_bg.wasm`; 16 hex
/// digits from scripts/page.sh, a u64 without leading zeros from Trunk): a new build has new
/// names, so such a file never changes under its name.
pub fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name
        .rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .trim_end_matches("_bg");
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (12..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

async fn cache_control(
    uri: axum::http::Uri,
    mut res: axum::response::Response,
) -> axum::response::Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, VARY};
    if !res.status().is_success() {
        return res;
    }
    // The same path is sent brotli, gzip or plain by the request's Accept-Encoding: a shared
    // cache (a school's proxy) must keep them apart.
    res.headers_mut()
        .insert(VARY, HeaderValue::from_static("accept-encoding"));
    // A hashed name that is not there gets index.html (the app's fallback): never cached.
    let html = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let value = if is_hashed_asset(uri.path()) && !html {
        "public, max-age=31536000, immutable"
    } else {
        // index.html names the current build's files: always asked again (a 304 when same).
        "no-cache"
    };
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(value));
    res
}

async fn not_built() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><title>cashflow</title><h1>cashflow</h1>\
             <p>The browser app is not built. Run <code>scripts/run.sh</code>, or point \
             <code>--web-dir</code> at Trunk's output.</p>\
             <p>The API works: <a href=\"/api/balances\">/api/balances</a>, \
             <a href=\"/health\">/health</a>.</p>",
        ),
    )
}

async fn metrics(State(s): State<AppState>) -> axum::response::Response {
    s.topic_demand.asked();
    match s.metrics.render() {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::http::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let broker = s.shared.health().broker();
    let store = s.shared.store().health();
    let tasks_down = s.shared.health().tasks_down();
    let working = broker.reachable && broker.topic_ready && tasks_down.is_empty();
    let ok = working && !store.restoring;
    let body = Health {
        status: match (working, store.restoring) {
            (false, _) => "degraded",
            (true, true) => "restoring",
            (true, false) => "ok",
        }
        .into(),
        broker,
        store,
        tasks_down,
    };
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

/// An API error: its status and a JSON body `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// A query string the handler could not read is a JSON 400 with axum's reason.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no such API path: {} (there are /api/balances, /api/producer, /api/recent, /api/topic and /health)",
            uri.path()
        ),
    }
}

#[derive(Deserialize)]
struct BalancesQuery {
    /// Accounts with ids above this one (the previous page's `next_after`).
    after: Option<AccountId>,
    limit: Option<usize>,
}

/// One page of accounts (a topic may hold a million) with the totals over all of them.
async fn balances(
    State(s): State<AppState>,
    q: Result<Query<BalancesQuery>, QueryRejection>,
) -> Result<Json<Balances>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(BALANCES_PAGE);
    if !(1..=MAX_BALANCES_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_BALANCES_PAGE}, got {limit}"
        )));
    }
    Ok(Json(s.shared.balances(q.after.unwrap_or(0), limit)))
}

/// The topic's partitions and the groups reading it, as of the last refresh (about a second).
async fn topic(State(s): State<AppState>) -> Json<TopicView> {
    s.topic_demand.asked();
    Json((**s.topic_view.borrow()).clone())
}

async fn producer(State(s): State<AppState>) -> Json<ProducerStats> {
    Json(s.shared.producer().stats())
}

#[derive(Deserialize)]
struct RecentQuery {
    limit: Option<usize>,
}

/// `GET /api/lessons`: every lesson of the panel, its texts and its checks now.
async fn lessons(State(s): State<AppState>) -> Json<Vec<crate::lessons::Listed>> {
    Json(crate::lessons::Lessons::listed(
        &s.shared.lessons().checks().get(),
    ))
}

/// `GET /api/dead-letters`: the newest records of the dead-letter topic, read back from it.
async fn dead_letters(State(s): State<AppState>) -> Json<cashflow_shared::poison::DeadLetters> {
    let (newest, read, _) = s.shared.feed().dead_letters();
    Json(cashflow_shared::poison::DeadLetters { read, newest })
}

async fn recent(
    State(s): State<AppState>,
    q: Result<Query<RecentQuery>, QueryRejection>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    Ok(Json(s.shared.feed().recent(query(q)?.limit.unwrap_or(100))))
}
