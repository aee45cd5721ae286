use super::*;

#[test]
fn properties_are_key_value() {
    assert_eq!(
        parse_kv("linger.ms=5"),
        Ok(("linger.ms".into(), "5".into()))
    );
    assert_eq!(parse_kv("a=b=c"), Ok(("a".into(), "b=c".into())));
    assert!(parse_kv("linger.ms").is_err());
    assert!(parse_kv("=5").is_err());
}

#[test]
fn props_files_carry_commas() {
    let props =
        parse_props_file("# SASL\nsasl.username=teacher\n\nsasl.password=a,b=c\n  # done\n");
    assert_eq!(
        props,
        Ok(vec![
            ("sasl.username".into(), "teacher".into()),
            ("sasl.password".into(), "a,b=c".into()),
        ])
    );
    assert!(
        parse_props_file("linger.ms")
            .unwrap_err()
            .to_string()
            .starts_with("line 1")
    );
}

#[test]
fn settings_are_checked() {
    let bad = Cli::parse_from(["cashflow", "--min-amount", "5", "--max-amount", "1"]);
    assert!(
        bad.into_settings()
            .unwrap_err()
            .to_string()
            .contains("amounts")
    );
    let bad = Cli::parse_from(["cashflow", "--topic", "no spaces"]);
    assert!(bad.into_settings().is_err());
    let bad = Cli::parse_from(["cashflow", "-X", "no.such.property=1"]);
    assert!(
        bad.into_settings()
            .unwrap_err()
            .to_string()
            .contains("no.such.property")
    );
}

#[test]
fn local_brokers_are_one_or_three_and_set_the_replication() {
    let settings = |args: &[&str]| {
        let mut all = vec!["cashflow", "--ephemeral"];
        all.extend(args);
        Cli::parse_from(all).into_settings()
    };
    let one = settings(&[]).expect("defaults");
    assert_eq!(
        (one.local_brokers, one.replication_factor, one.kafka_heap_mb),
        (1, 1, 512)
    );
    let three = settings(&["--local-brokers", "3"]).expect("three");
    assert_eq!(
        (
            three.local_brokers,
            three.replication_factor,
            three.kafka_heap_mb
        ),
        (3, 3, 384)
    );
    let e = settings(&["--local-brokers", "2"])
        .expect_err("two")
        .to_string();
    assert!(e.contains("quorum"), "{e}");
    let e = settings(&["--local-brokers", "3", "--brokers", "k:9092"])
        .expect_err("with --brokers")
        .to_string();
    assert!(e.contains("--brokers"), "{e}");
    let e = settings(&["--replication-factor", "3"])
        .expect_err("one node, three replicas")
        .to_string();
    assert!(e.contains("--local-brokers 3"), "{e}");
    let ext = settings(&["--brokers", "k:9092"]).expect("external");
    assert_eq!(ext.replication_factor, 1);
    assert!(Cli::try_parse_from(["cashflow", "--local-brokers", "4"]).is_err());
}
