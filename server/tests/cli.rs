//! The real binary: flag errors, an unreachable broker, graceful shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cashflow_shared::protocol::ServerMsg;

fn cashflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cashflow"));
    // Only what the test passes counts; no CASHFLOW_* from the caller's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHFLOW_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn,cashflow=info");
    c
}

fn fails_with_one_line(args: &[&str], want: &str) {
    let out = cashflow().args(args).output().expect("run cashflow");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line for {args:?}, got:\n{err}"
    );
    assert!(
        err.contains(want),
        "{args:?}: {err:?} should mention {want:?}"
    );
}

/// Without Java or the broker's jars, the default demo (no --brokers) says what installs them,
/// in one line, exit code 2; the local broker never listens beyond loopback.
#[test]
fn without_java_or_the_jars_the_error_names_the_fix() {
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--kafka-listen",
        "127.0.0.1:0",
        "--ephemeral",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    fails_with_one_line(
        &with(&["--kafka-classpath", "/no/such/kafka-classpath.txt"]),
        "scripts/setup.sh demo",
    );
    fails_with_one_line(&with(&["--java", "/no/such/java"]), "Java 17");
    fails_with_one_line(&with(&["--java", "/no/such/java"]), "--brokers");
    fails_with_one_line(&["--kafka-listen", "0.0.0.0:9092"], "loopback");
}

#[test]
fn wrong_flags_get_one_clear_line() {
    fails_with_one_line(&["--bogus"], "--bogus");
    fails_with_one_line(&["-X", "linger.ms"], "key=value");
    fails_with_one_line(&["-X", "no.such.property=1"], "no.such.property");
    fails_with_one_line(&["-X", "linger.ms=soon"], "linger.ms");
    fails_with_one_line(&["--rate", "fast"], "rate");
    fails_with_one_line(&["--accounts", "0"], "accounts");
    fails_with_one_line(&["--listen", "nowhere"], "listen");
    fails_with_one_line(&["--min-amount", "0.001"], "decimal");
}

const SECRET: &str = "hunter2-classroom";

#[test]
fn secrets_in_bad_properties_are_not_echoed() {
    // Valid one by one, not together (the default SASL mechanism is not built in).
    let pw = format!("sasl.password={SECRET}");
    let out = cashflow()
        .args(["-X", "security.protocol=sasl_plaintext", "-X", &pw])
        .output()
        .expect("run cashflow");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sasl.password=***"), "{err}");
    assert!(!err.contains(SECRET), "secret echoed: {err}");
    fails_with_one_line(&["-X", "security.protocol=sasl_plaintext"], "SASL");
}

/// SASL settings pass through `-X` to every client; the password never reaches the logs, even
/// at debug level with librdkafka's own messages.
#[test]
fn sasl_settings_pass_through_and_the_password_is_never_logged() {
    let pw = format!("sasl.password={SECRET}");
    let mut child = cashflow()
        .env("RUST_LOG", "debug")
        .args([
            "--brokers",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
        ])
        .args([
            "-X",
            "security.protocol=sasl_plaintext",
            "-X",
            "sasl.mechanism=PLAIN",
        ])
        .args(["-X", "sasl.username=teacher", "-X", &pw])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines(&mut child);
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The properties line, the address, and a client trying SASL on the (absent) broker.
    let wanted = [
        "sasl.password=***",
        "http://",
        "sasl_plaintext://127.0.0.1:1",
    ];
    while !wanted
        .iter()
        .all(|w| all.iter().any(|l: &String| l.contains(w)))
    {
        let left = deadline.checked_duration_since(Instant::now());
        match left.and_then(|left| rx.recv_timeout(left).ok()) {
            Some(l) => all.push(l),
            None => panic!("missing one of {wanted:?} in:\n{}", all.join("\n")),
        }
    }
    assert!(all.iter().any(|l| l.contains("sasl.username=teacher")));
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    all.extend(rx.iter());
    for l in &all {
        assert!(!l.contains(SECRET), "secret logged: {l}");
    }
}

#[test]
fn help_exits_zero() {
    let out = cashflow().arg("--help").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--brokers"));
}

/// `--help` shows where settings come from, never their values from the environment.
#[test]
fn help_does_not_print_secrets_from_the_environment() {
    let out = cashflow()
        .arg("--help")
        .env("CASHFLOW_KAFKA_PROPS", format!("sasl.password={SECRET}"))
        .env("CASHFLOW_PRESENTER_TOKEN", SECRET)
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("CASHFLOW_KAFKA_PROPS"), "{help}");
    assert!(!help.contains(SECRET), "secret in --help:\n{help}");
}

/// A property file carries values with commas (the environment's comma-separated form cannot);
/// its errors name the file and line.
#[test]
fn kafka_props_file() {
    let dir = std::env::temp_dir().join(format!("cashflow-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.properties");
    std::fs::write(&bad, "# broken\nlinger.ms\n").expect("write");
    fails_with_one_line(
        &["--kafka-props-file", bad.to_str().expect("utf-8")],
        "line 2",
    );
    let unknown = dir.join("unknown.properties");
    std::fs::write(&unknown, "no.such.property=a,b\n").expect("write");
    fails_with_one_line(
        &["--kafka-props-file", unknown.to_str().expect("utf-8")],
        "no.such.property",
    );
    fails_with_one_line(&["--kafka-props-file", "/no/such/file"], "/no/such/file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second server on the same data folder is refused with one line and exit code 2 (two
/// brokers on one log folder cannot both run); the first one is unaffected.
#[tokio::test]
async fn one_server_per_data_folder() {
    let dir = std::env::temp_dir().join(format!("cashflow-lock-{}", std::process::id()));
    let args = |d: &std::path::Path| {
        vec![
            "--listen".to_string(),
            "127.0.0.1:0".into(),
            "--kafka-listen".into(),
            "127.0.0.1:0".into(),
            "--paused".into(),
            "--data-dir".into(),
            d.display().to_string(),
        ]
    };
    let mut first = cashflow()
        .args(args(&dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines(&mut first);
    let url = url_of(&wait_line(&rx, Duration::from_secs(30), |l| {
        l.contains("http://")
    }));
    let out = cashflow()
        .args(args(&dir))
        .output()
        .expect("run the second");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: another cashflow is running with the data folder"),
        "{err}"
    );
    let h = reqwest::get(format!("{url}/health")).await.expect("health");
    assert_ne!(h.status(), 500, "the first server still answers");
    sigterm(&first);
    assert!(wait_exit(&mut first, Duration::from_secs(30)).success());
    // Released with the process: the folder can be used again.
    let mut again = cashflow()
        .args(args(&dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines(&mut again);
    wait_line(&rx, Duration::from_secs(30), |l| l.contains("http://"));
    sigterm(&again);
    assert!(wait_exit(&mut again, Duration::from_secs(30)).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the child's stdout and stderr lines into one channel.
fn lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });
    std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx2.send(l)))
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!(
        "no matching line within {limit:?}; saw:\n{}",
        seen.join("\n")
    );
}

fn url_of(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .trim_end_matches('/')
        .to_owned()
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn unreachable_broker_is_reported_quickly() {
    let mut child = cashflow()
        .args(["--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines(&mut child);
    let started = Instant::now();
    let url = url_of(&wait_line(&rx, Duration::from_secs(20), |l| {
        l.contains("http://")
    }));
    let warning = wait_line(&rx, Duration::from_secs(10), |l| {
        l.contains("WARN") && l.contains("unreachable")
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "warned after {:?}",
        started.elapsed()
    );
    assert!(
        warning.contains("127.0.0.1:1"),
        "names the broker: {warning}"
    );
    let resp = reqwest::get(format!("{url}/health")).await.expect("health");
    assert_eq!(resp.status(), 503);
    let h: cashflow_shared::api::Health = resp.json().await.expect("json");
    assert_eq!(h.status, "degraded");
    assert!(!h.broker.reachable);
    assert!(h.broker.last_error.is_some());
    // Still answering, and shuts down cleanly though the broker never appeared.
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn managed_demo_serves_balances_and_stops_gracefully() {
    let mut child = cashflow()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
            "--rate",
            "200",
            "--ephemeral",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines(&mut child);
    let url = url_of(&wait_line(&rx, Duration::from_secs(30), |l| {
        l.contains("http://")
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b: cashflow_shared::api::Balances = reqwest::get(format!("{url}/api/balances"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if b.stats.applied >= 50 {
            assert!(!b.accounts.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no transactions applied within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = reqwest::get(format!("{url}/health")).await.expect("health");
    assert_eq!(h.status(), 200);
    sigterm(&child);
    let _ = wait_line(&rx, Duration::from_secs(30), |l| {
        l.contains("producer flushed")
    });
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
}

/// Beyond loopback (issue 21: at e51ed68 `--listen 0.0.0.0:PORT` started silently, printed
/// `http://0.0.0.0:PORT/`, and any socket could pause, reset or stop the broker): the running
/// line names an address others can open; a token is made once, kept in the data dir, and
/// printed as a presenter link; a socket without it is read-only, with it a presenter; the
/// same token after a restart; `--open-controls` opens the controls explicitly. Every
/// connection goes through 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_controls_need_the_presenter_link() {
    use common::ws::{reply, send};
    use tokio_tungstenite::connect_async;
    let brokers = common::apache_kafka();
    let data = tempfile::tempdir().expect("temp dir");
    let topic = common::unique("presenter");
    let data_dir = data.path().display().to_string();
    let args = |extra: &[&str]| {
        common::server_args(
            &brokers,
            &topic,
            &[
                &["--listen", "0.0.0.0:0", "--paused", "--data-dir", &data_dir][..],
                extra,
            ]
            .concat(),
        )
    };
    let local = |url: &str| {
        let port = url.rsplit(':').next().expect("a port").to_owned();
        format!("ws://127.0.0.1:{port}/ws")
    };
    let server = common::Binary::start(&args(&[]));
    assert!(!server.url.contains("0.0.0.0"), "{}", server.url);
    server.line_with("students open: http://");
    let link = server.line_with("presenter link");
    let token = link
        .split_once("#presenter=")
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no token in {link:?}"));
    assert_eq!(token.len(), 64, "{link}");
    let kept = std::fs::read_to_string(data.path().join("presenter-token")).expect("kept");
    assert_eq!(kept.trim(), token);

    let (mut ws, _) = connect_async(local(&server.url)).await.expect("connect");
    send(&mut ws, r#"{"cmd":"start","id":1}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("read-only"), "{message}"),
        other => panic!("a command without the token: {other:?}"),
    }
    send(&mut ws, r#"{"cmd":"login","token":"guess","id":2}"#).await;
    assert!(matches!(reply(&mut ws).await, ServerMsg::Error { .. }));
    send(
        &mut ws,
        &format!(r#"{{"cmd":"login","token":"{token}","id":3}}"#),
    )
    .await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Presenter { id: Some(3) }
    ));
    send(&mut ws, r#"{"cmd":"start","id":4}"#).await;
    let r = reply(&mut ws).await;
    assert!(!matches!(r, ServerMsg::Error { .. }), "{r:?}");
    drop(ws);
    server.sigterm();
    let mut child = server.child;
    assert!(child.wait().expect("exit").success());

    let again = common::Binary::start(&args(&[]));
    let link = again.line_with("presenter link");
    assert!(
        link.ends_with(&token),
        "the same token after a restart: {link}"
    );
    again.sigterm();
    let mut child = again.child;
    assert!(child.wait().expect("exit").success());

    let open = common::Binary::start(&args(&["--open-controls"]));
    open.line_with("controls the demo (--open-controls)");
    let (mut ws, _) = connect_async(local(&open.url)).await.expect("connect");
    send(&mut ws, r#"{"cmd":"pause","id":1}"#).await;
    let r = reply(&mut ws).await;
    assert!(!matches!(r, ServerMsg::Error { .. }), "{r:?}");
    drop(ws);
    open.sigterm();
    let mut child = open.child;
    assert!(child.wait().expect("exit").success());
}

/// The first snapshot a page gets from the server at `url`.
async fn snapshot(url: &str) -> cashflow_shared::protocol::Snapshot {
    let ws_url = format!("{}/ws", url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("connect");
    loop {
        if let ServerMsg::Snapshot(s) = common::ws::next(&mut ws, Duration::from_secs(10)).await {
            return *s;
        }
    }
}

/// What the presenter set survives a restart (issue 21: a restart forgot paused generation,
/// the accounts, the members, the keys and the lessons' checks): kept in the data dir for the
/// topic and restored at start, and a flag given now wins over what was kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_presenter_set_survives_a_restart() {
    use common::ws::{reply, send};
    let brokers = common::apache_kafka();
    let data = tempfile::tempdir().expect("temp dir");
    let topic = common::unique("kept");
    let data_dir = data.path().display().to_string();
    let args = |extra: &[&str]| {
        common::server_args(
            &brokers,
            &topic,
            &[
                &["--listen", "127.0.0.1:0", "--data-dir", &data_dir][..],
                extra,
            ]
            .concat(),
        )
    };
    let stop = |b: common::Binary| {
        b.sigterm();
        let mut child = b.child;
        assert!(child.wait().expect("exit").success());
    };
    let server = common::Binary::start(&args(&[]));
    let ws_url = format!("{}/ws", server.url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("connect");
    for (i, cmd) in [
        r#""cmd":"inject","poison":"not_json""#,
        r#""cmd":"set_accounts","accounts":17"#,
        r#""cmd":"set_keys","keys":"random""#,
        r#""cmd":"add_member""#,
    ]
    .iter()
    .enumerate()
    {
        send(&mut ws, &format!("{{{cmd},\"id\":{i}}}")).await;
        let r = reply(&mut ws).await;
        assert!(!matches!(r, ServerMsg::Error { .. }), "{cmd}: {r:?}");
    }
    // The poison lesson's check turns once the calculator went on past the poison.
    let file = data.path().join("presenter-settings.json");
    let kept = |f: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(f).unwrap_or_default()).unwrap_or_default()
    };
    let poisoned = |v: &serde_json::Value| {
        v["lessons"]["lessons"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["id"] == "poison"))
            .is_some_and(|l| l["experiment"]["state"] == "happened")
    };
    common::wait_for(Duration::from_secs(60), "the poison check kept", || async {
        poisoned(&kept(&file)).then_some(())
    })
    .await;
    for (i, cmd) in [r#""cmd":"set_rate","rate":0.5"#, r#""cmd":"pause""#]
        .iter()
        .enumerate()
    {
        send(&mut ws, &format!("{{{cmd},\"id\":{}}}", 10 + i)).await;
        let r = reply(&mut ws).await;
        assert!(!matches!(r, ServerMsg::Error { .. }), "{cmd}: {r:?}");
    }
    common::wait_for(Duration::from_secs(10), "the settings kept", || async {
        let v = kept(&file);
        (v["running"] == false && v["rate"] == 0.5 && v["members"] == 2 && v["accounts"] == 17)
            .then_some(())
    })
    .await;
    drop(ws);
    stop(server);

    let again = common::Binary::start(&args(&[]));
    let s = snapshot(&again.url).await;
    assert!(!s.generator.running, "paused, as the presenter left it");
    assert_eq!(s.generator.rate, Some(0.5));
    assert_eq!(s.generator.settings.accounts, 17);
    assert_eq!(
        s.generator.keys,
        cashflow_shared::ordering::KeyStrategy::Random
    );
    let poison = s
        .lessons
        .get(cashflow_shared::lessons::LessonId::Poison)
        .expect("poison");
    assert!(
        poison.experiment.detail.starts_with("before the restart: "),
        "{poison:?}"
    );
    common::wait_for(Duration::from_secs(30), "two members again", || async {
        (snapshot(&again.url).await.group.members.len() == 2).then_some(())
    })
    .await;
    stop(again);

    // A flag given now wins over what was kept.
    let flagged = common::Binary::start(&args(&["--rate", "3", "--accounts", "4"]));
    let s = snapshot(&flagged.url).await;
    assert_eq!(s.generator.rate, Some(3.0));
    assert_eq!(s.generator.settings.accounts, 4);
    assert!(!s.generator.running, "still paused: no flag said otherwise");
    stop(flagged);
}
