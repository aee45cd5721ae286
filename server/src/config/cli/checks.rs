//! The flags checked and turned into [`Settings`]; [`FlagError`] says what is wrong, before
//! anything runs.

use cashflow_shared::generator::GeneratorSettings;

use super::Cli;
use crate::config::{
    Settings, StoreSettings, default_data_dir, default_kafka_classpath, parse_props_file,
};

/// Why the flags (and environment) do not make settings: said at start, before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error(transparent)]
    Generator(#[from] cashflow_shared::generator::SettingsError),
    #[error("--topic {0:?}: use 1-200 of a-z A-Z 0-9 . _ -")]
    Topic(String),
    #[error("--brokers is empty; leave it out to run a local Apache Kafka broker")]
    EmptyBrokers,
    #[error(
        "--local-brokers 2: run 1, or 3 (a KRaft quorum of two controllers stops when either does)"
    )]
    TwoLocalBrokers,
    #[error(
        "--local-brokers runs brokers itself; leave it out with --brokers (that cluster's brokers are its own)"
    )]
    LocalBrokersWithBrokers,
    #[error(
        "--replication-factor {factor} needs {factor} brokers; cashflow runs {local} (--local-brokers 3 for three)"
    )]
    ReplicationFactor { factor: i32, local: u8 },
    #[error(
        "--kafka-listen {0}: the local broker takes clients on loopback only (it has no authentication); give other machines --brokers of a secured cluster"
    )]
    KafkaListen(std::net::SocketAddr),
    #[error("--kafka-props-file {path}: {reason}")]
    PropsFile { path: String, reason: String },
    /// librdkafka refused a `-X` property (its reason, secrets redacted).
    #[error(transparent)]
    Properties(#[from] crate::config::properties::PropertyError),
    #[error("{flag} {value} is too large")]
    TooLarge { flag: &'static str, value: u64 },
    #[error("no home folder for the data (the local broker's log): give --data-dir or --ephemeral")]
    NoDataDir,
}

impl Cli {
    /// Which of the settings [`crate::kept`] keeps were given on the command line or
    /// in the environment (they win over the kept ones).
    pub fn explicit(matches: &clap::ArgMatches) -> crate::config::Explicit {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        };
        crate::config::Explicit {
            rate: given("rate"),
            paused: given("paused"),
            accounts: given("accounts"),
            credit_percent: given("credit_percent"),
            amounts: given("min_amount") || given("max_amount"),
        }
    }

    pub fn into_settings(self) -> Result<Settings, FlagError> {
        let generator = GeneratorSettings {
            accounts: self.accounts,
            credit_percent: self.credit_percent,
            min_amount: self.min_amount,
            max_amount: self.max_amount,
        };
        generator.validate()?;
        if self.topic.is_empty()
            || self.topic.len() > 200
            || !self
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(FlagError::Topic(self.topic));
        }
        if self.brokers.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(FlagError::EmptyBrokers);
        }
        if self.local_brokers == 2 {
            return Err(FlagError::TwoLocalBrokers);
        }
        if self.brokers.is_some() && self.local_brokers != 1 {
            return Err(FlagError::LocalBrokersWithBrokers);
        }
        let replication_factor = match (self.replication_factor, &self.brokers) {
            (Some(r), None) if r > i32::from(self.local_brokers) => {
                return Err(FlagError::ReplicationFactor {
                    factor: r,
                    local: self.local_brokers,
                });
            }
            (Some(r), _) => r,
            (None, None) => i32::from(self.local_brokers),
            (None, Some(_)) => 1,
        };
        if !self.kafka_listen.ip().is_loopback() {
            return Err(FlagError::KafkaListen(self.kafka_listen));
        }
        let mut kafka = match &self.kafka_props_file {
            Some(path) => {
                let props_file = |reason: String| FlagError::PropsFile {
                    path: path.display().to_string(),
                    reason,
                };
                let text = std::fs::read_to_string(path).map_err(|e| props_file(e.to_string()))?;
                parse_props_file(&text).map_err(|e| props_file(e.to_string()))?
            }
            None => Vec::new(),
        };
        kafka.extend(self.kafka);
        crate::config::properties::validate_properties(&kafka)?;
        let limit = |v: u64, unit: u64, flag: &'static str| match v {
            0 => Ok(-1),
            v => v
                .checked_mul(unit)
                .and_then(|x| i64::try_from(x).ok())
                .ok_or(FlagError::TooLarge { flag, value: v }),
        };
        let retention_ms = limit(self.retention_hours, 3_600_000, "--retention-hours")?;
        let retention_bytes = self
            .retention_mb
            .map(|mb| limit(mb, 1 << 20, "--retention-mb"))
            .transpose()?;
        Ok(Settings {
            brokers: self.brokers,
            topic: self.topic,
            partitions: self.partitions,
            replication_factor,
            listen: self.listen,
            rate: self.rate,
            paused: self.paused,
            calculator_paused: self.calculator_paused,
            generator,
            opening_balance: self.opening_balance,
            group_prefix: self.group_prefix,
            kafka,
            kafka_listen: self.kafka_listen,
            java: self.java,
            kafka_classpath: self.kafka_classpath.unwrap_or_else(default_kafka_classpath),
            kafka_heap_mb: self.kafka_heap_mb.unwrap_or(if self.local_brokers > 1 {
                384
            } else {
                512
            }),
            local_brokers: self.local_brokers,
            data_dir: if self.ephemeral {
                None
            } else {
                Some(
                    self.data_dir
                        .or_else(default_data_dir)
                        .ok_or(FlagError::NoDataDir)?,
                )
            },
            web_dir: self.web_dir,
            allow_origins: self.allow_origins,
            presenter_token: self.presenter_token.filter(|t| !t.is_empty()),
            open_controls: self.open_controls,
            explicit: None,
            store: StoreSettings {
                every_records: self.snapshot_records,
                every: std::time::Duration::from_secs(self.snapshot_seconds),
                chunk_accounts: self.snapshot_chunk_accounts,
                abort_after: self.test_abort_snapshot_after,
            },
            retention_ms,
            retention_bytes,
            id_window: self.id_window,
            test_fail_calculator_after: self.test_fail_calculator_after,
            test_stall_calculator_after: self.test_stall_calculator_after,
            stuck_after: std::time::Duration::from_secs(self.stuck_after_seconds),
        })
    }
}
