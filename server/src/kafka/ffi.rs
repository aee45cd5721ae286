//! The few librdkafka calls rust-rdkafka does not wrap, behind safe functions.

use std::ffi::CStr;

use rdkafka::consumer::{Consumer, ConsumerContext};

/// The member id the group coordinator gave this consumer (`None` before it joined).
pub fn member_id<C: ConsumerContext, K: Consumer<C>>(consumer: &K) -> Option<String> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is a live client handle for as long as `consumer` is borrowed.
    // rd_kafka_memberid returns a NUL-terminated copy owned by us (or NULL), freed below with
    // the allocator librdkafka used.
    unsafe {
        let p = rdkafka_sys::rd_kafka_memberid(rk);
        if p.is_null() {
            return None;
        }
        let id = CStr::from_ptr(p).to_string_lossy().into_owned();
        rdkafka_sys::rd_kafka_mem_free(rk, p.cast());
        (!id.is_empty()).then_some(id)
    }
}

/// Ends a consumer as a killed process would: no final commit, no LeaveGroup. Its member stays
/// in the group until its session times out, as a crashed machine's does. (Dropping an rdkafka
/// consumer closes it politely: it leaves the group at once.)
///
/// The Rust side of the consumer is leaked on purpose (the queue handle must not be destroyed
/// after its client): a few hundred bytes, plus its context, which keeps whatever it holds
/// alive for good (cashflow's holds an `Arc` of the server's shared state, which lives as long
/// as the process anyway). Used by the delivery lesson, a few times per class.
pub fn kill<C: ConsumerContext>(consumer: rdkafka::consumer::BaseConsumer<C>) {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live client `consumer` owns; it is destroyed exactly once, here, and
    // `consumer` is forgotten so its Drop (close, queue destroy, client destroy) never runs.
    unsafe {
        rdkafka_sys::rd_kafka_destroy_flags(rk, rdkafka_sys::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    std::mem::forget(consumer);
}

/// What the broker says of one topic named in [`topic_ids`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicId {
    /// Its id (base64, as Kafka's tools print it).
    Id(String),
    /// The topic does not exist.
    Missing,
}

/// Each named topic's id (DescribeTopics), which names one incarnation of a topic: a topic
/// deleted and created again under the same name has a new id. Blocks up to `timeout`.
pub fn topic_ids(
    client: &rdkafka::client::NativeClient,
    names: &[&str],
    timeout: std::time::Duration,
) -> Result<Vec<(String, TopicId)>, String> {
    use rdkafka_sys as sys;
    use std::ffi::CString;
    let names_c: Vec<CString> = names
        .iter()
        .map(|n| CString::new(*n).map_err(|_| format!("topic name {n:?} holds a NUL")))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const std::ffi::c_char> = names_c.iter().map(|n| n.as_ptr()).collect();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = client.ptr();
    // SAFETY: `rk` is a live client for as long as `client` is borrowed. Every object created
    // here (collection, options, queue, event) is destroyed exactly once before returning; the
    // strings read from the result are copied before the event that owns them is destroyed.
    unsafe {
        let collection =
            sys::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len());
        let options = sys::rd_kafka_AdminOptions_new(
            rk,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut errstr = [0 as std::ffi::c_char; 256];
        sys::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = sys::rd_kafka_queue_new(rk);
        sys::rd_kafka_DescribeTopics(rk, collection, options, queue);
        // The request times out on its own (above); the extra second lets its answer arrive.
        let event = sys::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1_000));
        let result = if event.is_null() {
            Err("no answer to DescribeTopics in time".to_owned())
        } else if sys::rd_kafka_event_error(event)
            != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(cstr(sys::rd_kafka_event_error_string(event)))
        } else {
            let res = sys::rd_kafka_event_DescribeTopics_result(event);
            let mut n = 0usize;
            let descs = if res.is_null() {
                std::ptr::null_mut()
            } else {
                sys::rd_kafka_DescribeTopics_result_topics(res, &mut n)
            };
            if descs.is_null() {
                n = 0;
            }
            let mut out = Vec::with_capacity(n);
            let mut failed = None;
            for i in 0..n {
                let d = *descs.add(i);
                if d.is_null() {
                    continue; // a topic the answer left out: not described, so not ours
                }
                let name = cstr(sys::rd_kafka_TopicDescription_name(d));
                let err = sys::rd_kafka_TopicDescription_error(d);
                let code = if err.is_null() {
                    sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                } else {
                    sys::rd_kafka_error_code(err)
                };
                match code {
                    sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {
                        let id = sys::rd_kafka_TopicDescription_topic_id(d);
                        out.push((name, TopicId::Id(cstr(sys::rd_kafka_Uuid_base64str(id)))));
                    }
                    sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART => {
                        out.push((name, TopicId::Missing));
                    }
                    _ => {
                        failed.get_or_insert(format!(
                            "{name}: {}",
                            cstr(sys::rd_kafka_error_string(err))
                        ));
                    }
                }
            }
            failed.map_or(Ok(out), Err)
        };
        if !event.is_null() {
            sys::rd_kafka_event_destroy(event);
        }
        sys::rd_kafka_queue_destroy(queue);
        sys::rd_kafka_AdminOptions_destroy(options);
        sys::rd_kafka_TopicCollection_destroy(collection);
        result
    }
}

/// A copy of a C string librdkafka owns ("" for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string alive for the call.
unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Each partition's first (`Offset::Beginning`) or end (`Offset::End`: the last stable offset
/// for a read_committed client) offset, in one ListOffsets request per broker, from any client
/// handle (rust-rdkafka offers `offsets_for_times` on consumers only). `fetch_watermarks` sends
/// two requests per partition. A partition that did not answer is left out. Blocks up to
/// `timeout`.
pub fn list_offsets(
    client: &rdkafka::client::NativeClient,
    topic: &str,
    partitions: i32,
    which: rdkafka::Offset,
    timeout: std::time::Duration,
) -> rdkafka::error::KafkaResult<std::collections::BTreeMap<i32, i64>> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::{Offset, TopicPartitionList};
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, which)?;
    }
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `client` is a live handle for the call; `tpl` is a valid list we own, which
    // rd_kafka_offsets_for_times updates in place (each element's offset, or its error).
    let code = unsafe { rdkafka_sys::rd_kafka_offsets_for_times(client.ptr(), tpl.ptr(), ms) };
    if code != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::from(code)));
    }
    Ok(tpl
        .elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) if e.error().is_ok() => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::BaseConsumer;

    #[test]
    fn a_consumer_that_never_joined_has_no_member_id() {
        let c: BaseConsumer = ClientConfig::new()
            .set("group.id", "cashflow-ffi-test")
            .set("bootstrap.servers", "127.0.0.1:9")
            .create()
            .expect("consumer");
        assert_eq!(super::member_id(&c), None);
    }
}
