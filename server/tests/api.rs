//! The HTTP API's edges: an unknown API path is a JSON 404 (not the page's HTML), and a query
//! string the API cannot read is a JSON 400 with the reason.

mod common;

use common::{Broker, spawn_app, unique};

async fn error(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("application/json"), "{url}: {kind}");
    (status, r.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_bad_queries_get_json_errors() {
    let app = spawn_app(Broker::Embedded, &unique("api")).await;
    for path in ["/api", "/api/nope", "/api/balances/7", "/api/topic/x/y"] {
        let (status, body) = error(&format!("{}{path}", app.url)).await;
        assert_eq!(status, 404, "{path}");
        let e = body["error"].as_str().expect("an error text");
        assert!(
            e.contains("no such API path") && e.contains(path),
            "{path}: {e}"
        );
    }
    for (path, says) in [
        ("/api/balances?limit=abc", "limit"),
        ("/api/balances?after=-1", "after"),
        ("/api/balances?limit=0", "limit must be between"),
        ("/api/balances?limit=10001", "limit must be between"),
        ("/api/recent?limit=many", "limit"),
    ] {
        let (status, body) = error(&format!("{}{path}", app.url)).await;
        assert_eq!(status, 400, "{path}");
        let e = body["error"].as_str().expect("an error text");
        assert!(e.contains(says), "{path}: {e}");
    }
    // The API itself still answers.
    let b = app.balances().await;
    assert_eq!(b.accounts.len(), 0);
    app.shutdown().await;
}
