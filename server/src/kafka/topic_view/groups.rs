//! What the broker says of a consumer group, as the view shows it: its members and their
//! partitions of the topic, and the offsets it committed there.

use std::collections::BTreeMap;

use cashflow_shared::api::MemberView;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::Context;

use super::TIMEOUT;

/// Consumer groups (name, state, members with their partitions of `topic`), owned.
pub(super) fn describe(
    groups: &[GroupInfo],
    topic: &str,
) -> Vec<(String, String, Vec<MemberView>)> {
    groups
        .iter()
        // Not a consumer group (e.g. Kafka Connect's): no offsets on the topic to show.
        .filter(|g| matches!(g.protocol_type(), "consumer" | ""))
        .map(|g| {
            let members = g
                .members()
                .iter()
                .map(|m| MemberView {
                    member_id: m.id().to_owned(),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().to_owned(),
                    partitions: m
                        .assignment()
                        .and_then(cashflow_shared::assignment::parse)
                        .and_then(|mut a| a.remove(topic))
                        .map(|mut p| {
                            p.sort_unstable();
                            p
                        })
                        .unwrap_or_default(),
                })
                .collect();
            (g.name().to_owned(), g.state().to_owned(), members)
        })
        .collect()
}

/// The offsets `consumer`'s group committed on `topic` (none if it cannot say).
pub(super) fn committed_on(
    consumer: &BaseConsumer<Context>,
    tpl: &TopicPartitionList,
    topic: &str,
) -> BTreeMap<i32, i64> {
    match consumer.committed_offsets(tpl.clone(), TIMEOUT) {
        Ok(c) => c
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}
