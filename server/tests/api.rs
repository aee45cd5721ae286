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
async fn the_lessons_are_listed_in_the_panels_order_with_their_checks() {
    let app = spawn_app(Broker::Apache, &unique("api-lessons")).await;
    let listed: Vec<serde_json::Value> = app.get("/api/lessons").await;
    let names: Vec<&str> = listed.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "ordering",
            "delivery",
            "replay",
            "poison",
            "outage",
            "back_pressure"
        ]
    );
    for l in &listed {
        assert_eq!(l["id"], l["name"], "{l}");
        assert!(l["title"].as_str().is_some_and(|t| !t.is_empty()), "{l}");
        assert!(l["steps"].as_array().is_some_and(|s| !s.is_empty()), "{l}");
        assert_eq!(l["status"]["experiment"]["state"], "not_run", "{l}");
        assert_eq!(l["done"], false, "{l}");
        // A control case where the lesson has one, and its status beside it.
        assert_eq!(
            l["control"].is_null(),
            l["status"]["control"].is_null(),
            "{l}"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_bad_queries_get_json_errors() {
    let app = spawn_app(Broker::Apache, &unique("api")).await;
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

/// The page's files: the build's brotli or gzip copy to a browser that accepts it, and caching
/// for good only for files whose names carry their hash (issue 21: at e51ed68 the 754 KB wasm
/// went uncompressed, with no cache header, to every student).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_sent_compressed_and_cached_by_hash() {
    let web = tempfile::tempdir().expect("temp dir");
    let wasm = "cashflow-web-0123456789abcdef_bg.wasm";
    let index = "<!doctype html><title>cashflow</title>";
    std::fs::write(web.path().join("index.html"), index).expect("index");
    std::fs::write(web.path().join("index.html.gz"), b"gz-index").expect("index.gz");
    std::fs::write(web.path().join(wasm), b"\0asm-plain").expect("wasm");
    std::fs::write(web.path().join(format!("{wasm}.br")), b"br-wasm").expect("wasm.br");
    std::fs::write(web.path().join(format!("{wasm}.gz")), b"gz-wasm").expect("wasm.gz");
    let dir = web.path().to_owned();
    let app =
        common::spawn_app_with(Broker::Apache, &unique("page"), move |s| s.web_dir = dir).await;
    // reqwest here decompresses nothing (no such feature): the bytes are what was sent.
    let get = |path: &str, accept: &str| {
        let url = format!("{}{path}", app.url);
        let accept = accept.to_owned();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header(reqwest::header::ACCEPT_ENCODING, accept)
                .send()
                .await
                .expect("GET");
            let h = |n: reqwest::header::HeaderName| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (enc, cache) = (
                h(reqwest::header::CONTENT_ENCODING),
                h(reqwest::header::CACHE_CONTROL),
            );
            assert_eq!(h(reqwest::header::VARY), "accept-encoding");
            (
                r.status().as_u16(),
                enc,
                cache,
                r.bytes().await.expect("body").to_vec(),
            )
        }
    };
    let path = format!("/{wasm}");
    let (status, enc, cache, body) = get(&path, "gzip, deflate, br").await;
    assert_eq!(
        (status, enc.as_str(), body.as_slice()),
        (200, "br", b"br-wasm".as_slice())
    );
    assert!(
        cache.contains("immutable") && cache.contains("max-age=31536000"),
        "{cache}"
    );
    let (_, enc, _, body) = get(&path, "gzip").await;
    assert_eq!(
        (enc.as_str(), body.as_slice()),
        ("gzip", b"gz-wasm".as_slice())
    );
    let (_, enc, _, body) = get(&path, "identity").await;
    assert_eq!(
        (enc.as_str(), body.as_slice()),
        ("", b"\0asm-plain".as_slice())
    );
    // The index names the current build's files: never cached without asking again.
    let (status, enc, cache, body) = get("/", "gzip").await;
    assert_eq!(
        (status, enc.as_str(), body.as_slice()),
        (200, "gzip", b"gz-index".as_slice())
    );
    assert_eq!(cache, "no-cache");
    let (_, _, cache, body) = get("/some/route", "identity").await;
    assert_eq!(
        (cache.as_str(), body.as_slice()),
        ("no-cache", index.as_bytes())
    );
    // An old build's hashed name gets the index, which must not be cached for good.
    let (_, _, cache, body) = get("/cashflow-web-fedcba9876543210_bg.wasm", "identity").await;
    assert_eq!(
        (cache.as_str(), body.as_slice()),
        ("no-cache", index.as_bytes())
    );
    app.shutdown().await;
}

#[test]
fn hashed_asset_names() {
    use cashflow::http::is_hashed_asset;
    for hashed in [
        "/cashflow-web-0123456789abcdef_bg.wasm",
        "/cashflow-web-0123456789abcdef.js",
        "/style-fedcba9876543210.css",
    ] {
        assert!(is_hashed_asset(hashed), "{hashed}");
    }
    for plain in [
        "/",
        "/index.html",
        "/style.css",
        "/cashflow-web-123.js",
        "/x-0123456789abcdeg.js",
    ] {
        assert!(!is_hashed_asset(plain), "{plain}");
    }
}
