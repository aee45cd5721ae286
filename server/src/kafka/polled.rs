//! Producers whose events (delivery reports, errors, logs) are served when librdkafka has some,
//! not by a thread polling on a timer.
//!
//! rust-rdkafka's `ThreadedProducer` and `FutureProducer` each run a thread that polls in
//! 100 ms calls, and each call spins through its last sub-millisecond: the time left is handed
//! to librdkafka in whole milliseconds, rounded down to 0, and polled again until the deadline
//! passes. Measured idle, that was ~1 % of a core per producer, the larger part of the server's
//! idle cost on Apache Kafka. Here a [`BaseProducer`] is served by a task woken through
//! librdkafka's queue event callback (as rust-rdkafka's own `StreamConsumer` is woken), so a
//! producer with nothing to report costs nothing.

use std::ffi::c_void;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer, ProducerContext,
};
use rdkafka_sys as rdsys;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

/// A producer served by a task (see the module's docs); it derefs to its [`BaseProducer`].
/// Made inside a Tokio runtime. Dropping it stops the task and destroys the producer, as
/// dropping the producer would (rust-rdkafka's `Drop`: pending records purged).
pub struct Polled<C: ProducerContext + 'static> {
    inner: Arc<Inner<C>>,
    stop: CancellationToken,
}

/// The producer and its handle on librdkafka's main queue, where the events wait.
struct Inner<C: ProducerContext + 'static> {
    queue: Queue,
    /// Given to librdkafka as the callback's argument; released once the callback is off.
    notify: *const Notify,
    producer: BaseProducer<C>,
}

/// librdkafka's queue handle. Its calls are thread-safe (librdkafka locks the queue).
struct Queue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: the queue handle and the `Notify` the callback reaches are used only through
// librdkafka's and tokio's thread-safe calls.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}
unsafe impl<C: ProducerContext + 'static> Send for Inner<C> {}
unsafe impl<C: ProducerContext + 'static> Sync for Inner<C> {}

/// Called by librdkafka (from its own threads) when an event is queued.
unsafe extern "C" fn wake(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` kept alive until the callback is turned off.
    let notify = unsafe { &*(opaque as *const Notify) };
    notify.notify_one();
}

impl<C: ProducerContext + 'static> Drop for Inner<C> {
    fn drop(&mut self) {
        // SAFETY: the queue is ours; turning the callback off takes the queue's lock, so no
        // callback runs after it returns and the `Notify` can be released, then the handle.
        // The producer itself is dropped after this (fields drop after `drop`).
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.0, None, std::ptr::null_mut());
            drop(Arc::from_raw(self.notify));
            rdsys::rd_kafka_queue_destroy(self.queue.0);
        }
    }
}

/// Events served before the task lets other tasks run (a burst of delivery reports at Max).
const SERVE_BEFORE_YIELD: u32 = 64;

impl<C: ProducerContext + 'static> Polled<C> {
    pub fn new(producer: BaseProducer<C>) -> Self {
        let notify = Arc::new(Notify::new());
        // SAFETY: a new handle on the client's main queue (the one BaseProducer polls), and a
        // callback whose argument outlives its registration (see `Inner::drop`).
        let queue = unsafe {
            Queue(rdsys::rd_kafka_queue_get_main(
                producer.client().native_ptr(),
            ))
        };
        let raw = Arc::into_raw(notify.clone());
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(queue.0, Some(wake), raw as *mut c_void);
        }
        let inner = Arc::new(Inner {
            queue,
            notify: raw,
            producer,
        });
        let stop = CancellationToken::new();
        tokio::spawn(serve(Arc::downgrade(&inner), notify, stop.clone()));
        Polled { inner, stop }
    }
}

impl<C: ProducerContext + 'static> Deref for Polled<C> {
    type Target = BaseProducer<C>;
    fn deref(&self) -> &BaseProducer<C> {
        &self.inner.producer
    }
}

impl<C: ProducerContext + 'static> Drop for Polled<C> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the producer's events whenever librdkafka queues some, until stopped or the
/// producer is gone. Holds it only while serving, so dropping the [`Polled`] destroys it.
async fn serve<C: ProducerContext + 'static>(
    inner: Weak<Inner<C>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let mut served = 0u32;
        loop {
            let Some(i) = inner.upgrade() else {
                return;
            };
            if stop.is_cancelled() || Arc::strong_count(&i) == 1 {
                // The `Polled` is gone: if this is the last hold on the producer, it is
                // destroyed off the runtime's threads (its drop flushes for up to 500 ms).
                drop(tokio::task::spawn_blocking(move || drop(i)));
                return;
            }
            // SAFETY: the queue lives as long as `i`.
            if unsafe { rdsys::rd_kafka_queue_length(i.queue.0) } == 0 {
                break;
            }
            // One event per call (a zero timeout ends rust-rdkafka's loop after one look); a
            // poll on a non-empty queue always takes its head (librdkafka serves or drops
            // every op it pops), so this loop ends once the queue is empty.
            i.producer.poll(Duration::ZERO);
            served += 1;
            if served.is_multiple_of(SERVE_BEFORE_YIELD) {
                drop(i);
                tokio::task::yield_now().await;
            }
        }
        // The callback fires when the queue goes from empty to non-empty; a wake-up that came
        // while serving is stored and taken at once, so nothing queued meanwhile is missed.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = notify.notified() => {}
        }
    }
}

/// How a record sent with [`Polled::send_result`] ended: its partition and offset, or why it
/// was not written.
pub type Delivered = Result<(i32, i64), KafkaError>;

/// A record's delivery to await (see [`Polled::send_result`]). Every record taken gets its
/// report (a purge at the producer's drop reports the record purged), so `Err` (the report
/// dropped unserved) is not expected.
pub type Delivery = oneshot::Receiver<Delivered>;

/// A producer context that hands each delivery report to whoever awaits it, around the
/// client context `C` (what rust-rdkafka's `FutureProducer` does, on a [`Polled`] producer).
/// It passes on what [`Context`](crate::kafka::Context) overrides: logs and errors.
pub struct Futures<C: ClientContext>(pub C);

impl<C: ClientContext> ClientContext for Futures<C> {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }
}

impl<C: ClientContext> ProducerContext for Futures<C> {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // Nobody waiting (the sender gave up) is not an error.
        let _ = tx.send(delivered);
    }
}

impl<C: ClientContext + 'static> Polled<Futures<C>> {
    /// Enqueues `record` without waiting: its delivery is awaited through the result; `Err`
    /// if librdkafka did not take it (e.g. its queue is full).
    pub fn send_result<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        self.send(base_record(record, Box::new(tx)))
            .map(|()| rx)
            .map_err(|(e, _)| e)
    }

    /// Sends `record`, waiting up to `queue_timeout` for room in librdkafka's queue, then for
    /// its delivery.
    pub async fn send_waiting<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Delivered
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        let mut record = base_record(record, Box::new(tx));
        let deadline = Instant::now() + queue_timeout;
        loop {
            match self.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

fn base_record<'a, K, P>(
    r: FutureRecord<'a, K, P>,
    tx: Box<oneshot::Sender<Delivered>>,
) -> BaseRecord<'a, K, P, Box<oneshot::Sender<Delivered>>>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    BaseRecord {
        topic: r.topic,
        partition: r.partition,
        payload: r.payload,
        key: r.key,
        timestamp: r.timestamp,
        headers: r.headers,
        delivery_opaque: tx,
    }
}
