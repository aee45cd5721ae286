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
            .starts_with("line 1")
    );
}

#[test]
fn settings_are_checked() {
    let bad = Cli::parse_from(["cashflow", "--min-amount", "5", "--max-amount", "1"]);
    assert!(bad.into_settings().unwrap_err().contains("amounts"));
    let bad = Cli::parse_from(["cashflow", "--topic", "no spaces"]);
    assert!(bad.into_settings().is_err());
    let bad = Cli::parse_from(["cashflow", "-X", "no.such.property=1"]);
    assert!(
        bad.into_settings()
            .unwrap_err()
            .contains("no.such.property")
    );
}
