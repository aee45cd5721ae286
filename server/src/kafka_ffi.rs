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
