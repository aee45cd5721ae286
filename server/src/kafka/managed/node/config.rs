//! A node's `server.properties` and `log4j2.properties`, written at every start.

use super::super::*;
use super::Node;

/// Only warnings and the start/stop lines: the log stays small on a long-running demo.
const LOG4J2: &str = "\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
";

/// With `CASHFLOW_KAFKA_REQUEST_LOG` set: one line per request ("Completed request:…").
const REQUEST_LOG4J2: &str = "\
logger.request.name = kafka.request.logger
logger.request.level = debug
";

impl Node {
    /// The broker's configuration, written at every start (the ports may differ).
    pub(in crate::kafka::managed) fn write_config(&self) -> anyhow::Result<()> {
        let (addr, ctl, data) = (self.addr, self.controller, self.dir.join("data"));
        let (id, voters, replicas) = (self.id, &self.voters, self.of);
        // Writes are acknowledged by two replicas of three on a cluster (one may be down).
        let min_isr = if self.of > 1 { 2 } else { 1 };
        let props = format!(
            "\
process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{addr},CONTROLLER://{ctl}
advertised.listeners=PLAINTEXT://{addr}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
# The internal topics have a replica on every node (up to three).
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
# Both rebalance protocols: the classic one, and KIP-848's consumer protocol for its lesson.
group.coordinator.rebalance.protocols=classic,consumer
# A class sees a new member's partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
# Retention and compaction act within a minute (disk stays bounded; segments are small
# enough for retention by size to delete some).
log.segment.bytes=16777216
log.retention.check.interval.ms=30000
log.cleaner.backoff.ms=5000
# Idle cost (BENCHMARKS.md, \"The managed broker at idle\"): every request thread and network
# thread wakes ~3 times a second with nothing to do, and KRaft writes a no-op metadata record
# every 500 ms by default. A demo's load needs few threads.
num.network.threads=1
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
metadata.max.idle.interval.ms=5000
",
            data = data.display()
        );
        std::fs::write(self.props(), props)
            .with_context(|| format!("cannot write {}", self.props().display()))?;
        // Every request the broker answers, to its log: how BENCHMARKS.md counted where an
        // idle demo's requests come from (a diagnostic, never on by default).
        let request_log = std::env::var_os("CASHFLOW_KAFKA_REQUEST_LOG").is_some();
        let log4j = if request_log {
            format!("{LOG4J2}{REQUEST_LOG4J2}")
        } else {
            LOG4J2.to_owned()
        };
        std::fs::write(self.dir.join("log4j2.properties"), log4j)?;
        Ok(())
    }
}
