//! The `-X` passthrough to librdkafka: checked by librdkafka itself at start, and redacted
//! wherever it is logged.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;

/// Property names whose values are secrets: never logged. Besides passwords, secrets and
/// tokens: key passphrases, inline PEM keys and certificates (`ssl.key.pem`,
/// `ssl.certificate.pem`, …), `*.key` values and the OAUTHBEARER configuration.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "sasl.oauthbearer.config",
        "key.pem",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k.ends_with(".pem")
        || k.ends_with(".key")
}

/// `-X` properties as they may be logged.
pub fn describe_properties(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a Kafka property (`-X`, a line of `--kafka-props-file`) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("{0:?} is not key=value (e.g. -X linger.ms=5)")]
    NotKeyValue(String),
    #[error("line {line}: {text:?} is not key=value (e.g. linger.ms=5)")]
    Line { line: usize, text: String },
    /// librdkafka refused it: the properties (a secret's value shown as `***`) and its reason.
    #[error("-X {shown}: {reason}")]
    Refused { shown: String, reason: String },
}

/// Checks `-X` properties with librdkafka itself, so a typo fails at start with its name: each
/// one alone for unknown names and bad values, then all together, since some only make sense
/// together (`security.protocol=sasl_ssl` needs its `sasl.mechanism`).
pub fn validate_properties(props: &[(String, String)]) -> Result<(), PropertyError> {
    let mut all = ClientConfig::new();
    all.set("group.id", "cashflow-validate");
    for (k, v) in props {
        let mut cfg = ClientConfig::new();
        cfg.set("group.id", "cashflow-validate").set(k, v);
        if let Err(e @ KafkaError::ClientConfig(..)) = cfg.create::<BaseConsumer>() {
            let shown = if is_secret(k) { "***" } else { v.as_str() };
            return Err(PropertyError::Refused {
                shown: format!("{k}={shown}"),
                reason: kafka_reason(&e),
            });
        }
        all.set(k, v);
    }
    match all.create::<BaseConsumer>() {
        Ok(_) => Ok(()),
        Err(e) => Err(PropertyError::Refused {
            shown: describe_properties(props),
            reason: kafka_reason(&e),
        }),
    }
}

fn kafka_reason(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = describe_properties(&props(&[
            ("sasl.username", "teacher"),
            ("sasl.password", "p1"),
            ("ssl.key.password", "p2"),
            ("ssl.keystore.password", "p3"),
            ("sasl.oauthbearer.client.secret", "p4"),
            ("sasl.oauthbearer.config", "principal=x p5"),
            ("ssl.key.pem", "p6"),
            ("SASL.PASSWORD", "p7"),
            ("ssl.key.passphrase", "p8"),
            ("ssl.certificate.pem", "p9"),
            ("ssl_engine.key", "p10"),
            ("linger.ms", "5"),
        ]));
        for n in 1..=10 {
            assert!(!shown.contains(&format!("p{n}")), "p{n} shown in {shown}");
        }
        assert!(shown.contains("sasl.username=teacher"));
        assert!(shown.contains("sasl.password=***"));
        assert!(shown.contains("linger.ms=5"));
    }

    #[test]
    fn properties_are_checked_alone_and_together() {
        assert!(validate_properties(&props(&[("linger.ms", "5")])).is_ok());
        let e = validate_properties(&props(&[("linger.ms", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linger.ms"), "{e}");
        let sasl = props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "u"),
            ("sasl.password", "secret-value"),
        ]);
        assert!(validate_properties(&sasl).is_ok());
        // TLS and SCRAM are built in (librdkafka with OpenSSL).
        let tls = props(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]);
        assert_eq!(validate_properties(&tls), Ok(()));
        let e = validate_properties(
            &sasl[..1]
                .iter()
                .chain(&sasl[3..])
                .cloned()
                .collect::<Vec<_>>(),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("secret-value"), "{e}");
    }
}
