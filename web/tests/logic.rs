//! The page's logic, run as WebAssembly in headless chromium (wasm-bindgen-test-runner finds
//! chromedriver on PATH): the same reducer and chart geometry the page uses.
use cashflow_shared::Money;
use cashflow_shared::dashboard::{Dashboard, Scale, format_money, line_points};
use cashflow_shared::protocol::{Delta, Sample, ServerMsg};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn reducer_applies_server_json() {
    let mut d = Dashboard::default();
    // Protocol 4: account rows as arrays, the counters as a merge patch, a history point as its
    // changed balances.
    let frame = r#"{"type":"delta","accounts":[[3,92.5,4,null]],
        "counters":{"ledger":{"applied":4},"sent":4,"delivered":4,"applied_per_second":2.0},
        "sample":{"t_ms":1000,"applied_per_second":2.0,"len":3,"changed":[[0,10000],[1,10000],[2,9250]],"full":true},
        "broker_reachable":true}"#;
    let msg: ServerMsg = serde_json::from_str(frame).expect("a delta frame");
    d.apply(msg);
    assert_eq!(d.accounts[&3].balance, Money::from_minor(9250));
    assert_eq!(d.accounts[&3].count, 4);
    assert_eq!(d.counters.ledger.applied, 4);
    assert_eq!(d.counters.delivered, 4);
    assert_eq!(d.history.len(), 1);
    assert_eq!(d.history[0].balances, vec![10_000, 10_000, 9_250]);
    assert!(d.broker_reachable);
    let _ = Delta::default();
}

#[wasm_bindgen_test]
fn money_is_exact_on_wasm() {
    assert_eq!(format_money(Money::from_minor(123_456_789)), "1,234,567.89");
}

#[wasm_bindgen_test]
fn scales_on_wasm() {
    let s = Scale::nice(9_003, 11_870, 5);
    assert_eq!((s.lo, s.hi, s.step), (9_000, 12_000, 500));
}

#[wasm_bindgen_test]
fn line_points_on_wasm() {
    let history = (0..600)
        .map(|i| Sample {
            t_ms: i * 1000,
            balances: vec![i],
            applied_per_second: 0.0,
        })
        .collect();
    let pts =
        line_points(&history, 0, &Scale::nice(0, 600, 4), 600.0, 100.0, 300).expect("charted");
    assert!(pts.split(' ').count() <= 301);
}
