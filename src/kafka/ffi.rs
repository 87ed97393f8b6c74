//! The one unsafe corner of the crate: librdkafka calls rdkafka does not
//! wrap — the batch consume API, cached watermarks, adding brokers.
//!
//! rdkafka's `BaseConsumer::poll` takes one message per call through the
//! event API, allocating for each; `rd_kafka_consume_batch_queue` hands
//! over up to a whole batch in one call. The messages are copied out (into
//! one buffer a batch) and destroyed before the call returns, so nothing
//! borrowed from librdkafka outlives it.

use std::ffi::CStr;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::Consumer;

use super::KafkaClient;

/// The consumer queue of a client, released on drop.
pub(crate) struct ConsumerQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
}

// SAFETY: librdkafka queues are thread-safe; the handle is only used by the
// fetch thread that owns it, and destroyed once.
unsafe impl Send for ConsumerQueue {}

/// One message as librdkafka delivered it, borrowed for the duration of
/// the visitor call.
pub(crate) struct Raw<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub timestamp: Option<(i64, crate::consumer::TimestampType)>,
    /// The broker that served it; -1 when unknown.
    pub broker: i32,
    /// Its headers, in order; empty (no allocation) without any.
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// What a batch read hands over, one at a time.
pub(crate) enum Taken<'a> {
    Message(Raw<'a>),
    Error(RawError<'a>),
}

/// The headers of `m`, borrowed for the message's lifetime.
///
/// # Safety
/// `m` must be a valid message that outlives `'a`.
unsafe fn headers<'a>(m: *mut rdsys::rd_kafka_message_t) -> Vec<(&'a str, Option<&'a [u8]>)> {
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m` is valid; librdkafka fills `hdrs` or reports there are none.
    if unsafe { rdsys::rd_kafka_message_headers(m, &mut hdrs) }
        != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        || hdrs.is_null()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for idx in 0.. {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
        // SAFETY: `hdrs` belongs to `m`; the pointers it yields live as long.
        let err = unsafe { rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: a NUL-terminated name, and `size` bytes at `value`.
        let name = unsafe { CStr::from_ptr(name) }.to_str().unwrap_or("");
        out.push((name, unsafe { bytes(value as *mut std::ffi::c_void, size) }));
    }
    out
}

/// An error librdkafka put on the consumer queue: of one partition when
/// `topic` is set, else of the client (a broker down, all brokers down).
/// A partition's end (`PartitionEOF`) comes this way too, at `offset`.
pub(crate) struct RawError<'a> {
    pub topic: Option<&'a str>,
    pub partition: i32,
    pub offset: i64,
    pub code: rdkafka::types::RDKafkaErrorCode,
    pub reason: &'a str,
}

unsafe fn bytes<'a>(ptr: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: librdkafka guarantees `len` readable bytes at `ptr` for
        // the message's lifetime.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
    }
}

impl ConsumerQueue {
    pub fn new(client: &KafkaClient) -> Self {
        // SAFETY: the client outlives the queue (both owned by the fetch
        // thread; the queue is dropped first), and the pointer is valid.
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(client.client().native_ptr()) };
        ConsumerQueue { queue }
    }

    /// Takes up to `max` messages, waiting at most `wait` for the first;
    /// calls `visit` for each, in queue order. Returns how many messages
    /// (of either kind) were taken.
    pub fn take(&self, max: usize, wait: Duration, mut visit: impl FnMut(Taken<'_>)) -> usize {
        if self.queue.is_null() || max == 0 {
            return 0;
        }
        let mut slots: Vec<*mut rdsys::rd_kafka_message_t> = vec![std::ptr::null_mut(); max];
        // The batch call waits for a full batch or the timeout: wait for one
        // message, then take what else is there without waiting.
        let mut n = 0usize;
        for (want, timeout) in [(1, wait), (max, Duration::ZERO)] {
            if n >= want {
                continue;
            }
            // SAFETY: `slots[n..]` has room for `want - n` pointers.
            let got = unsafe {
                rdsys::rd_kafka_consume_batch_queue(
                    self.queue,
                    timeout.as_millis().min(i32::MAX as u128) as i32,
                    slots.as_mut_ptr().add(n),
                    want - n,
                )
            };
            if got > 0 {
                n += got as usize;
            }
            if n == 0 {
                return 0;
            }
        }
        for &m in &slots[..n] {
            // SAFETY: each of the first `n` slots holds a message librdkafka
            // handed over; it is read, then destroyed exactly once.
            unsafe {
                let msg = &*m;
                let topic = (!msg.rkt.is_null())
                    .then(|| CStr::from_ptr(rdsys::rd_kafka_topic_name(msg.rkt)).to_str().unwrap_or(""));
                if msg.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    let reason = CStr::from_ptr(rdsys::rd_kafka_message_errstr(m)).to_string_lossy();
                    let code: rdkafka::types::RDKafkaErrorCode = msg.err.into();
                    visit(Taken::Error(RawError {
                        topic,
                        partition: msg.partition,
                        offset: msg.offset,
                        code,
                        reason: &reason,
                    }));
                } else {
                    use crate::consumer::TimestampType;
                    use rdsys::rd_kafka_timestamp_type_t as Kind;
                    let mut kind = Kind::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                    let ts = rdsys::rd_kafka_message_timestamp(m, &mut kind);
                    let timestamp = match kind {
                        Kind::RD_KAFKA_TIMESTAMP_CREATE_TIME => Some((ts, TimestampType::Create)),
                        Kind::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => Some((ts, TimestampType::LogAppend)),
                        Kind::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => None,
                    };
                    visit(Taken::Message(Raw {
                        topic: topic.unwrap_or(""),
                        partition: msg.partition,
                        offset: msg.offset,
                        key: bytes(msg.key, msg.key_len),
                        payload: bytes(msg.payload, msg.len),
                        timestamp,
                        broker: rdsys::rd_kafka_message_broker_id(m),
                        headers: headers(m),
                    }));
                }
                rdsys::rd_kafka_message_destroy(m);
            }
        }
        n
    }
}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        if !self.queue.is_null() {
            // SAFETY: obtained from rd_kafka_queue_get_consumer, destroyed once.
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}

/// The client's main queue, taken back from the consumer queue (where
/// rust-rdkafka forwards it): it carries librdkafka's logs and errors as
/// events, which the batch reads of [`ConsumerQueue::take`] would drop
/// unseen. The fetch thread serves it between batches; dropped, it is
/// forwarded back, so that what comes later is served by the client's own
/// close (events left in an unserved queue hold broker references, and
/// `rd_kafka_destroy` then waits forever).
pub(crate) struct MainQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
    consumer: *mut rdsys::rd_kafka_queue_t,
}

// SAFETY: as for ConsumerQueue: thread-safe queue, one owner, destroyed once.
unsafe impl Send for MainQueue {}

impl MainQueue {
    pub fn detach(client: &KafkaClient) -> Self {
        // SAFETY: a new reference to the main queue of a live client that
        // outlives it (both owned by the fetch thread, the queue dropped
        // first); un-forwarding is allowed at any time.
        let (queue, consumer) = unsafe {
            let rk = client.client().native_ptr();
            let (q, c) = (rdsys::rd_kafka_queue_get_main(rk), rdsys::rd_kafka_queue_get_consumer(rk));
            if !q.is_null() {
                rdsys::rd_kafka_queue_forward(q, std::ptr::null_mut());
            }
            (q, c)
        };
        MainQueue { queue, consumer }
    }

    /// Hands every waiting log line and error to the client's context (its
    /// `log` and `error` callbacks), without waiting; drops other events.
    pub fn serve(&self, client: &KafkaClient) {
        use rdkafka::client::ClientContext;
        if self.queue.is_null() {
            return;
        }
        let context = client.context();
        loop {
            // SAFETY: a live queue; each event returned is destroyed once.
            unsafe {
                let ev = rdsys::rd_kafka_queue_poll(self.queue, 0);
                if ev.is_null() {
                    return;
                }
                match rdsys::rd_kafka_event_type(ev) {
                    rdsys::RD_KAFKA_EVENT_LOG => {
                        let (mut fac, mut text, mut level) = (std::ptr::null(), std::ptr::null(), 0);
                        if rdsys::rd_kafka_event_log(ev, &mut fac, &mut text, &mut level) == 0 {
                            context.log(log_level(level), &c_text(fac), &c_text(text));
                        }
                    }
                    rdsys::RD_KAFKA_EVENT_ERROR => {
                        let code: rdkafka::types::RDKafkaErrorCode = rdsys::rd_kafka_event_error(ev).into();
                        let text = c_text(rdsys::rd_kafka_event_error_string(ev));
                        let error = if rdsys::rd_kafka_event_error_is_fatal(ev) != 0 {
                            rdkafka::error::KafkaError::MessageConsumptionFatal(code)
                        } else {
                            rdkafka::error::KafkaError::Global(code)
                        };
                        context.error(error, &text);
                    }
                    _ => {}
                }
                rdsys::rd_kafka_event_destroy(ev);
            }
        }
    }
}

/// A string librdkafka may leave null, lossily.
///
/// # Safety
/// `p` is null or a NUL-terminated string that outlives the result.
unsafe fn c_text<'a>(p: *const std::ffi::c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        "".into()
    } else {
        // SAFETY: the caller's promise.
        unsafe { CStr::from_ptr(p) }.to_string_lossy()
    }
}

/// librdkafka's syslog-style level as rdkafka's enum.
fn log_level(level: i32) -> rdkafka::config::RDKafkaLogLevel {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        ..=0 => L::Emerg,
        1 => L::Alert,
        2 => L::Critical,
        3 => L::Error,
        4 => L::Warning,
        5 => L::Notice,
        6 => L::Info,
        _ => L::Debug,
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: references obtained in `detach`, each destroyed once; the
        // forward is undone before the references go.
        unsafe {
            if !self.queue.is_null() {
                if !self.consumer.is_null() {
                    rdsys::rd_kafka_queue_forward(self.queue, self.consumer);
                }
                rdsys::rd_kafka_queue_destroy(self.queue);
            }
            if !self.consumer.is_null() {
                rdsys::rd_kafka_queue_destroy(self.consumer);
            }
        }
    }
}

/// Interrupts a waiting [`ConsumerQueue::take`] from another thread, so a
/// command to the fetch thread (an unassign in a release, above all) takes
/// effect now rather than when the poll times out. Holds its own reference
/// to the queue and to the client, so it may outlive the fetch thread.
pub(crate) struct QueueWaker {
    queue: *mut rdsys::rd_kafka_queue_t,
    /// Dropped after the queue reference (fields drop after `Drop::drop`).
    _client: std::sync::Arc<KafkaClient>,
}

// SAFETY: librdkafka queues are thread-safe, `rd_kafka_queue_yield` may be
// called from any thread, and the reference is destroyed once.
unsafe impl Send for QueueWaker {}
unsafe impl Sync for QueueWaker {}

impl QueueWaker {
    pub fn new(client: &std::sync::Arc<KafkaClient>) -> Self {
        // SAFETY: a new reference to the consumer queue of a live client,
        // which this waker keeps alive.
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(client.client().native_ptr()) };
        QueueWaker { queue, _client: std::sync::Arc::clone(client) }
    }

    /// Makes a waiting (or the next) consume call return at once.
    pub fn wake(&self) {
        if !self.queue.is_null() {
            // SAFETY: a live queue reference.
            unsafe { rdsys::rd_kafka_queue_yield(self.queue) };
        }
    }
}

impl Drop for QueueWaker {
    fn drop(&mut self) {
        if !self.queue.is_null() {
            // SAFETY: our own reference, destroyed once, before the client.
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}

/// The log end offset of a partition as last seen in a fetch response (no
/// request is made).
pub(crate) fn cached_log_end(client: &KafkaClient, topic: &str, partition: i32) -> Option<u64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut lo, mut hi) = (-1i64, -1i64);
    // SAFETY: valid client and NUL-terminated topic; outputs are plain i64s.
    let err = unsafe {
        rdsys::rd_kafka_get_watermark_offsets(client.client().native_ptr(), topic.as_ptr(), partition, &mut lo, &mut hi)
    };
    (err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0).then_some(hi as u64)
}

/// Tells librdkafka about brokers (`host:port,...`); known ones are ignored.
/// Returns how many were added.
pub(crate) fn add_brokers(client: &KafkaClient, servers: &str) -> usize {
    let Ok(list) = std::ffi::CString::new(servers) else { return 0 };
    // SAFETY: valid client and NUL-terminated list; librdkafka copies it.
    let added = unsafe { rdsys::rd_kafka_brokers_add(client.client().native_ptr(), list.as_ptr()) };
    added.max(0) as usize
}
