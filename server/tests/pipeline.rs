//! The whole pipeline against Apache Kafka 4.x (KRaft).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cashflow::App;
use cashflow_shared::api::Balances;
use cashflow_shared::command::Command;
use cashflow_shared::{Money, Transaction};
use common::{Broker, TestApp, read_topic, spawn_app, unique, wait_for};
use rdkafka::producer::FutureRecord;

const WAIT: Duration = Duration::from_secs(90);

async fn balances(app: &TestApp) -> Balances {
    app.balances().await
}

async fn wait_applied(app: &TestApp, n: u64) -> Balances {
    app.wait_applied(n, WAIT).await
}

async fn wait_delivered(app: &TestApp, n: u64) {
    wait_for(WAIT, &format!("{n} delivered"), || async {
        let p = app.producer_counts().clone();
        assert_eq!(p.failed, 0, "deliveries failed: {:?}", p.last_error);
        (p.delivered >= n).then_some(())
    })
    .await
}

/// The calculator's balances equal opening + what the producer saw acknowledged.
fn assert_reconciles(app: &TestApp, b: &Balances) {
    let p = app.producer_counts().clone();
    let by_account: BTreeMap<_, _> = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance, a.count)))
        .collect();
    assert_eq!(
        by_account.len(),
        p.delivered_by_account.len(),
        "same accounts"
    );
    for (acct, d) in &p.delivered_by_account {
        let expected = b.opening_balance.checked_add(d.net).unwrap();
        assert_eq!(
            by_account.get(acct),
            Some(&(expected, d.count)),
            "account {acct}"
        );
    }
    assert_eq!(
        b.stats.mismatches, 0,
        "producer and calculator agree on every new_balance"
    );
    assert_eq!(
        b.stats.applied, p.delivered,
        "applied exactly what was delivered"
    );
}

async fn balances_match_deliveries(broker: Broker) {
    let topic = unique("pipeline");
    let app = spawn_app(broker, &topic).await;
    let n = 3_000;
    app.producer
        .send(Command::Burst { count: n })
        .await
        .expect("burst");
    wait_delivered(&app, n).await;
    let b = wait_applied(&app, n).await;
    assert_reconciles(&app, &b);
    assert_eq!(b.stats.replayed + b.stats.duplicate_ids, 0);

    // Independently, from the topic: 6 partitions used, each account on one partition, and each
    // account's records in production order (the summary count runs 1, 2, 3, ...).
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len() as u64, n);
    let mut partition_of = HashMap::new();
    let mut last_count: HashMap<u32, u64> = HashMap::new();
    let mut net: BTreeMap<u32, i64> = BTreeMap::new();
    for r in &records {
        let tx = Transaction::parse(&r.payload).expect("our records parse");
        assert_eq!(
            r.key.as_deref(),
            Some(tx.account.to_string().as_bytes()),
            "keyed by account"
        );
        assert_eq!(
            *partition_of.entry(tx.account).or_insert(r.partition),
            r.partition,
            "account {} on one partition",
            tx.account
        );
        let c = tx.producer_count().expect("summary");
        let prev = last_count.insert(tx.account, c).unwrap_or(0);
        assert_eq!(
            c,
            prev + 1,
            "account {} out of order at p{}@{}",
            tx.account,
            r.partition,
            r.offset
        );
        *net.entry(tx.account).or_default() += tx.delta().minor();
    }
    for a in &b.accounts {
        assert_eq!(
            a.balance,
            Money::from_minor(b.opening_balance.minor() + net[&a.account])
        );
        assert_eq!(
            a.partition,
            Some(partition_of[&a.account]),
            "account {}",
            a.account
        );
    }
    let partitions: std::collections::HashSet<_> = records.iter().map(|r| r.partition).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions, not all on one"
    );
    assert_eq!(b.next_offsets.len(), partitions.len());
    // Old records go (balances come from the state store's snapshots): a week, and on the
    // managed broker at most 128 MiB per partition; the changelog is compacted.
    let bytes = match broker {
        Broker::Apache => "-1",
        Broker::Managed => "134217728",
    };
    for t in [topic.clone(), format!("{topic}.dlq")] {
        for (key, want) in [("retention.ms", "604800000"), ("retention.bytes", bytes)] {
            assert_eq!(
                common::topic_config(&app.brokers, &t, key).await.as_deref(),
                Some(want),
                "{t} {key}"
            );
        }
    }
    assert_eq!(
        common::topic_config(&app.brokers, &format!("{topic}.balances"), "cleanup.policy")
            .await
            .as_deref(),
        Some("compact")
    );
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_balances_match_deliveries,
    balances_match_deliveries
);

async fn restart_resumes_from_commits(broker: Broker) {
    let topic = unique("restart");
    let app = spawn_app(broker, &topic).await;
    app.producer
        .send(Command::Burst { count: 1_000 })
        .await
        .expect("burst");
    wait_applied(&app, 1_000).await;
    // Restart while a second burst is being produced and consumed.
    app.producer
        .send(Command::Burst { count: 2_000 })
        .await
        .expect("burst");
    wait_applied(&app, 1_100).await;
    app.restart_balance_consumer().await;
    wait_delivered(&app, 3_000).await;
    let b = wait_applied(&app, 3_000).await;
    assert_reconciles(&app, &b);
    // Let it settle, then it must still be exact: nothing applied twice.
    app.producer
        .send(Command::Burst { count: 10 })
        .await
        .expect("burst");
    let b = wait_applied(&app, 3_010).await;
    wait_delivered(&app, 3_010).await;
    assert_eq!(b.stats.applied, 3_010);
    assert_reconciles(&app, &b);
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_restart_resumes_from_commits,
    restart_resumes_from_commits
);

/// Messages exactly as the original Python producer writes them: every one keyed
/// "transaction", integer amounts, balances opening at 100.
fn original_messages() -> Vec<String> {
    let mut out = Vec::new();
    let mut balance: BTreeMap<u32, i64> = BTreeMap::new();
    let mut count: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..60u32 {
        let account = 1 + i % 4;
        let (ty, amount) = if i % 3 == 0 {
            ("Debit", 7 + i as i64 % 5)
        } else {
            ("Credit", 3 + i as i64 % 11)
        };
        let b = balance.entry(account).or_insert(100);
        *b += if ty == "Credit" { amount } else { -amount };
        let c = count.entry(account).or_insert(0);
        *c += 1;
        out.push(format!(
            r#"{{"account": {account}, "transaction_id": "{account}-{ty}-{i:06x}", "transaction_type": "{ty}", "amount": {amount}, "new_balance": {b}, "transaction_summary": {{"Transactions for Customer ID {account}": {c}}}}}"#
        ));
    }
    out
}

async fn accepts_the_originals_messages(broker: Broker) {
    let topic = unique("original");
    let app = spawn_app(broker, &topic).await;
    // Written only once the calculator has restored and reads live: records already in the
    // topic when it starts are read by the restore, which does not check `new_balance` (a CI
    // run once wrote all 62 before the restore, which then read them: no mismatch flagged).
    wait_for(WAIT, "the calculator restored", || async {
        (!app.store().restoring).then_some(())
    })
    .await;
    let producer = common::raw_producer(&app.brokers);
    let msgs = original_messages();
    // Then one with a wrong new_balance and one that is not a transaction at all.
    let wrong = r#"{"account": 9, "transaction_id": "9-Credit-x", "transaction_type": "Credit", "amount": 5, "new_balance": 1, "transaction_summary": {"Transactions for Customer ID 9": 1}}"#;
    for m in msgs.iter().map(String::as_str).chain([wrong, "{not json"]) {
        producer
            .send(
                FutureRecord::to(&topic).key("transaction").payload(m),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    let b = wait_for(WAIT, "all records handled", || async {
        let b = balances(&app).await;
        (b.stats.applied == 61 && b.malformed == 1).then_some(b)
    })
    .await;
    assert_eq!(b.stats.mismatches, 1, "the wrong new_balance is flagged");
    let acct9 = b.accounts.iter().find(|a| a.account == 9).unwrap();
    assert_eq!(
        acct9.balance,
        Money::from_major(105),
        "computed, not trusted"
    );
    // The original's own new_balance values reconcile exactly with ours: each account's last
    // message carries its final balance.
    let mut last_balance = BTreeMap::new();
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_str(m).unwrap();
        last_balance.insert(
            v["account"].as_u64().unwrap() as u32,
            v["new_balance"].as_i64().unwrap(),
        );
    }
    for (acct, nb) in last_balance {
        let a = b.accounts.iter().find(|a| a.account == acct).unwrap();
        assert_eq!(a.balance, Money::from_major(nb));
    }
    // All on one partition, like the original: the ledger still works.
    assert_eq!(b.next_offsets.len(), 1);
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_accepts_the_originals_messages,
    accepts_the_originals_messages
);

/// What we write, read with nothing but the original's field names and types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_messages_carry_the_originals_fields() {
    let topic = unique("fields");
    let app = spawn_app(Broker::Apache, &topic).await;
    app.producer
        .send(Command::Burst { count: 50 })
        .await
        .expect("burst");
    wait_delivered(&app, 50).await;
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len(), 50);
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let account = v["account"].as_u64().expect("account is an integer");
        let ty = v["transaction_type"].as_str().expect("transaction_type");
        assert!(ty == "Debit" || ty == "Credit");
        let id = v["transaction_id"].as_str().expect("transaction_id");
        assert!(id.starts_with(&format!("{account}-{ty}-")), "{id}");
        assert!(v["amount"].is_number() && v["new_balance"].is_number());
        let summary = v["transaction_summary"].as_object().expect("summary");
        assert!(summary[&format!("Transactions for Customer ID {account}")].is_u64());
    }
    app.shutdown().await;
}

/// Manual transactions go through Kafka and change exactly that account by that amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_transaction_changes_one_balance_exactly() {
    let topic = unique("manual");
    let app = spawn_app(Broker::Apache, &topic).await;
    let st = app
        .producer
        .send(Command::Manual {
            account: 3,
            transaction_type: cashflow_shared::TxType::Debit,
            amount: Money::from_minor(1234),
        })
        .await
        .expect("manual");
    assert_eq!(
        st.1.as_ref().map(|t| t.new_balance),
        Some(Some(Money::from_minor(10_000 - 1_234)))
    );
    let b = wait_applied(&app, 1).await;
    assert_eq!(b.accounts.len(), 1);
    assert_eq!(
        (b.accounts[0].account, b.accounts[0].balance),
        (3, Money::from_minor(8766))
    );
    let bad = app
        .producer
        .send(Command::Manual {
            account: 0,
            transaction_type: cashflow_shared::TxType::Credit,
            amount: Money::from_major(1),
        })
        .await;
    assert_eq!(
        bad.unwrap_err().to_string(),
        "account must be between 1 and 1000, got 0"
    );
    let bad = app.producer.send(Command::Burst { count: 0 }).await;
    assert!(bad.is_err());
    app.shutdown().await;
}

/// Every kind of bad record lands in `<topic>.dlq` with its reason and source position, is
/// counted, and never stops the calculator; the good records' balances stay exact.
async fn malformed_records_go_to_the_dead_letter_topic(broker: Broker) {
    let topic = unique("dlq");
    let app = spawn_app(broker, &topic).await;
    let producer = common::raw_producer(&app.brokers);
    let good = |id: &str, amount: u32| {
        format!(
            r#"{{"account":7,"transaction_id":"{id}","transaction_type":"Credit","amount":{amount}}}"#
        )
    };
    let oversized = format!(r#"{{"account":7,"pad":"{}"}}"#, "x".repeat(70_000));
    let catalogue: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a transaction"),
        (br#"{"account":"seven","transaction_id":"a","transaction_type":"Credit","amount":1}"#.to_vec(), "invalid type"),
        (br#"{"account":7,"transaction_type":"Credit","amount":1}"#.to_vec(), "missing field `transaction_id`"),
        (br#"{"account":7,"transaction_id":"b","transaction_type":"Credit","amount":-5}"#.to_vec(), "must be positive"),
        (br#"{"account":7,"transaction_id":"c","transaction_type":"Credit","amount":5000000000}"#.to_vec(), "exceeds the limit"),
        (br#"{"account":7,"transaction_id":"d","transaction_type":"Refund","amount":1}"#.to_vec(), "unknown variant"),
        (oversized.into_bytes(), "too large"),
        (b"\xff\xfe\x00garbage".to_vec(), "not UTF-8"),
        (good("g1", 1).into_bytes(), "duplicate transaction_id"), // g1 is also sent first, below
    ];
    let send = |payload: Vec<u8>| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key("7").payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("produce");
        }
    };
    send(good("g1", 1).into_bytes()).await;
    for (i, (bad, _)) in catalogue.iter().enumerate() {
        send(bad.clone()).await;
        send(good(&format!("ok{i}"), 2).into_bytes()).await;
    }
    let n_good = 1 + catalogue.len() as u64;
    let b = wait_for(
        WAIT,
        "good records applied, bad ones dead-lettered",
        || async {
            let b = balances(&app).await;
            (b.stats.applied == n_good && b.malformed == catalogue.len() as u64).then_some(b)
        },
    )
    .await;
    assert_eq!(
        b.stats.duplicate_ids, 1,
        "the duplicate is counted as such too"
    );
    assert_eq!(
        b.accounts[0].balance,
        Money::from_major(100 + 1 + 2 * catalogue.len() as i64)
    );

    let letters = wait_for(WAIT, "the dead letters", || async {
        let r = read_topic(&app.brokers, &format!("{topic}.dlq"));
        (r.len() == catalogue.len()).then_some(r)
    })
    .await;
    let source = read_topic(&app.brokers, &topic);
    for ((bad, want), letter) in catalogue.iter().zip(&letters) {
        let header = |k: &str| {
            letter
                .headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(
            header("cashflow.reason").contains(want),
            "{:?}: reason {:?}, want {want:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(40)]),
            header("cashflow.reason")
        );
        assert_eq!(&letter.payload, bad, "the record is kept untouched");
        let offset: i64 = header("cashflow.source.offset")
            .parse()
            .expect("offset header");
        let partition: i32 = header("cashflow.source.partition")
            .parse()
            .expect("partition header");
        let original = source
            .iter()
            .find(|r| r.partition == partition && r.offset == offset)
            .expect("source position");
        assert_eq!(&original.payload, bad);
        assert_eq!(header("cashflow.source.topic"), topic);
    }
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_malformed_records_go_to_the_dead_letter_topic,
    malformed_records_go_to_the_dead_letter_topic
);

/// Over a secured listener: with `good` properties the pipeline reconciles; with `bad` the
/// server still starts and `/health` reports a degraded broker whose error mentions `cause`.
async fn secured_listener(brokers: &str, good: Props, bad: Props, cause: &str) -> Health {
    let app = common::spawn_app_with(Broker::Apache, &unique("secured"), |s| {
        s.brokers = Some(brokers.to_owned());
        s.kafka = good;
    })
    .await;
    app.producer
        .send(Command::Burst { count: 300 })
        .await
        .expect("burst");
    wait_delivered(&app, 300).await;
    let b = wait_applied(&app, 300).await;
    assert_reconciles(&app, &b);
    app.shutdown().await;

    let mut settings = cashflow::Settings::for_tests(Some(brokers.to_owned()), &unique("secured"));
    settings.kafka = bad;
    let app = App::start(settings)
        .await
        .expect("starts despite bad settings");
    let health = wait_for(WAIT, &format!("{cause:?} in /health"), || async {
        let h: Health = reqwest::get(format!("http://{}/health", app.http_addr))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let e = h.broker.last_error.clone()?.to_ascii_lowercase();
        (h.status == "degraded" && e.contains(cause)).then_some(h)
    })
    .await;
    app.shutdown().await;
    health
}

type Props = Vec<(String, String)>;
type Health = cashflow_shared::api::Health;

fn props(list: &[(&str, &str)]) -> Props {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// librdkafka's SASL settings pass through `-X`: the whole pipeline works over Apache Kafka's
/// SASL_PLAINTEXT listener, and a wrong password is reported (never shown), not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_credentials_pass_through_to_kafka() {
    let sasl = |password: &str| {
        props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "cashflow"),
            ("sasl.password", password),
        ])
    };
    let wrong = "not-the-password-4711";
    let brokers = common::apache_kafka_sasl();
    let health = secured_listener(
        &brokers,
        sasl("cashflow-test-secret"),
        sasl(wrong),
        "authentication",
    )
    .await;
    assert!(!format!("{health:?}").contains(wrong));
}

/// TLS through `-X`: the pipeline over Apache Kafka's SSL listener, the broker's certificate
/// verified (host name included) against the CA given; without it, `/health` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_pass_through_to_kafka() {
    let (brokers, ca) = common::apache_kafka_tls();
    let ca = ca.display().to_string();
    secured_listener(
        &brokers,
        props(&[("security.protocol", "ssl"), ("ssl.ca.location", &ca)]),
        props(&[("security.protocol", "ssl")]),
        "certificate",
    )
    .await;
}

/// A burst larger than the producer's queue fills it: commands are still answered at once (a
/// manual transaction is sent or refused, never left waiting), transactions that did not fit are
/// taken back from the producer's view, and in the end every delivered transaction is applied
/// with no `new_balance` disagreeing. The queue is small (2 000) and the producer sends slowly
/// (one request of at most 20 records in flight), so the queue fills on any machine: whether
/// librdkafka's 100 000 fill depends on how fast the machine generates against how fast the
/// embedded broker acknowledges (a slower machine's debug build did not fill it in 90 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_never_stalls_commands() {
    const QUEUE: u64 = 2_000;
    const BURST: u64 = 20_000;
    let topic = unique("fullqueue");
    let app = common::spawn_app_with(Broker::Apache, &topic, |s| {
        s.kafka.extend(props(&[
            ("queue.buffering.max.messages", &QUEUE.to_string()),
            ("max.in.flight.requests.per.connection", "1"),
            ("batch.num.messages", "20"),
        ]));
    })
    .await;
    app.producer
        .send(Command::Burst { count: BURST })
        .await
        .expect("burst");
    wait_for(WAIT, "the queue to fill", || async {
        let p = app.producer_counts().clone();
        (p.sent.saturating_sub(p.delivered) >= QUEUE * 9 / 10).then_some(())
    })
    .await;
    let mut refused = 0;
    for i in 0..5 {
        let manual = Command::Manual {
            account: 1,
            transaction_type: cashflow_shared::TxType::Credit,
            amount: Money::from_minor(100 + i),
        };
        match tokio::time::timeout(Duration::from_secs(2), app.producer.send(manual)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                assert_eq!(e, cashflow::pipeline::producer::ProducerError::QueueFull);
                refused += 1;
            }
            Err(_) => panic!("a manual transaction waited over 2 s for a full queue"),
        }
        tokio::time::timeout(
            Duration::from_secs(2),
            app.producer.send(Command::SetMix { credit_percent: 60 }),
        )
        .await
        .expect("a settings command answered within 2 s")
        .expect("accepted");
    }
    println!("manual transactions refused while the queue was full: {refused} of 5");
    let b = wait_for(
        Duration::from_secs(300),
        "everything delivered and applied",
        || async {
            let p = app.producer_counts().clone();
            let b = balances(&app).await;
            (p.sent == p.delivered && b.stats.applied == p.delivered && p.sent >= BURST)
                .then_some(b)
        },
    )
    .await;
    assert_reconciles(&app, &b);
    app.shutdown().await;
}

/// A balance calculator that fails (a test-only fault point at its 500th record) is started
/// again by its supervisor: `/health` names it as down, with the reason, until then, and in the
/// end every delivered transaction is applied exactly once.
async fn a_failed_calculator_is_restarted(broker: Broker) {
    let topic = unique("supervised");
    let app = common::spawn_app_with(broker, &topic, |s| {
        s.test_fail_calculator_after = Some(500);
    })
    .await;
    app.producer
        .send(Command::Burst { count: 2_000 })
        .await
        .expect("burst");
    let health = format!("http://{}/health", app.http_addr);
    let reason = wait_for(WAIT, "/health to name the failed calculator", || async {
        let r = reqwest::get(&health).await.ok()?;
        let code = r.status().as_u16();
        let h: cashflow_shared::api::Health = r.json().await.ok()?;
        let why = h.tasks_down.get("balance calculator").cloned()?;
        assert_eq!((code, h.status.as_str()), (503, "degraded"));
        Some(why)
    })
    .await;
    assert!(reason.contains("test fault point"), "{reason}");
    wait_delivered(&app, 2_000).await;
    let b = wait_applied(&app, 2_000).await;
    wait_for(WAIT, "/health ok again", || async {
        let h: cashflow_shared::api::Health =
            reqwest::get(&health).await.ok()?.json().await.ok()?;
        (h.status == "ok").then_some(())
    })
    .await;
    assert_reconciles(&app, &b);
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_a_failed_calculator_is_restarted,
    a_failed_calculator_is_restarted
);

/// A balance calculator that stops making progress without any error (a test-only fault point:
/// a catch-up that never ends, at its 100th record) is reported by `/health` as stuck, with the
/// partition and how many records wait; shutdown still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_calculator_is_reported() {
    let topic = unique("stuck");
    let app = common::spawn_app_with(Broker::Apache, &topic, |s| {
        s.test_stall_calculator_after = Some(100);
        s.stuck_after = Duration::from_secs(3);
    })
    .await;
    app.producer
        .send(Command::Burst { count: 1_000 })
        .await
        .expect("burst");
    let health = format!("http://{}/health", app.http_addr);
    let why = wait_for(WAIT, "/health to report the stall", || async {
        let r = reqwest::get(&health).await.ok()?;
        let code = r.status().as_u16();
        let h: cashflow_shared::api::Health = r.json().await.ok()?;
        let why = h
            .tasks_down
            .get(cashflow::kafka::topics::STUCK_KEY)
            .cloned()?;
        assert_eq!((code, h.status.as_str()), (503, "degraded"));
        Some(why)
    })
    .await;
    assert!(why.starts_with("stuck: partition "), "{why}");
    assert!(why.contains("records to read, none handled for"), "{why}");
    tokio::time::timeout(Duration::from_secs(30), app.shutdown())
        .await
        .expect("shutdown within 30 s");
}
