//! `/metrics`: the Prometheus text agrees with what happened — transactions produced and
//! applied, dead letters, the latency histogram, viewers, and per-partition end offsets and lag
//! as the broker reports them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cashflow_shared::command::Command;
use common::{Broker, spawn_app, unique, wait_for};

/// Samples by name with their labels as written (`name{a="b"}` → value).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("bad value {l}")),
            )
        })
        .collect()
}

/// The sum of every sample of `name` (whatever its labels) and how many there are.
fn sum(s: &BTreeMap<String, f64>, name: &str) -> (f64, usize) {
    let of: Vec<f64> = s
        .iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .collect();
    (of.iter().sum(), of.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_tell_what_happened() {
    let app = spawn_app(Broker::Apache, &unique("metrics")).await;
    app.producer
        .send(Command::Burst { count: 200 })
        .await
        .expect("burst");
    let (brokers, topic) = (app.brokers.clone(), app.topic().to_owned());
    tokio::task::spawn_blocking(move || {
        common::write_records(
            &brokers,
            &topic,
            (0..3).map(|i| (i.to_string(), b"not a transaction".to_vec())),
        )
    })
    .await
    .expect("written");
    let _viewers = [
        common::ws::connect(&app).await,
        common::ws::connect(&app).await,
    ];
    let url = format!("{}/metrics", app.url);
    let group = app.group().group;
    let text = wait_for(Duration::from_secs(60), "metrics to catch up", || async {
        let r = reqwest::get(&url).await.ok()?;
        let kind = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = r.text().await.ok()?;
        let s = samples(&text);
        let lag = format!(
            "cashflow_consumer_lag{{topic=\"{}\",group=\"{group}\"",
            app.topic()
        );
        let calculator_lag: Vec<f64> = s
            .iter()
            .filter(|(k, _)| k.starts_with(&lag))
            .map(|(_, v)| *v)
            .collect();
        (s.get("cashflow_produced_records_total{result=\"delivered\"}") == Some(&200.0)
            && s.get("cashflow_applied_records_total") == Some(&200.0)
            && s.get("cashflow_dead_letters_total") == Some(&3.0)
            && s.get("cashflow_viewers") == Some(&2.0)
            && sum(&s, "cashflow_partition_end_offset") == (203.0, 6)
            && calculator_lag.len() == 6
            && calculator_lag.iter().all(|l| *l == 0.0))
        .then_some(text)
    })
    .await;
    let s = samples(&text);
    assert_eq!(s["cashflow_produced_records_total{result=\"failed\"}"], 0.0);
    assert_eq!(s["cashflow_broker_reachable"], 1.0);
    // Every applied record is in the histogram, its buckets cumulative up to +Inf.
    assert_eq!(s["cashflow_apply_latency_seconds_count"], 200.0);
    assert_eq!(
        s["cashflow_apply_latency_seconds_bucket{le=\"+Inf\"}"],
        200.0
    );
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("cashflow_apply_latency_seconds_bucket"))
        .map(|l| samples(l).into_values().next().expect("a value"))
        .collect();
    assert_eq!(buckets.len(), 16, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(s["cashflow_apply_latency_seconds_sum"] > 0.0);
    app.shutdown().await;
}
