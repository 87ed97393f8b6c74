//! librdkafka's own log lines reach `tracing` (target `librdkafka`), from
//! the consumer's batch-reading fetch thread too. A binary of its own: it
//! installs a global subscriber that records events, which no other test
//! may replace.

mod common;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// (level, target, message) of every event at INFO or above.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(tracing::Level, String, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() <= tracing::Level::INFO {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().push((*meta.level(), meta.target().to_owned(), m.0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librdkafka_warning_reaches_tracing() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("the only subscriber of this binary");
    let (zk, mut kafka) = common::group::topic_cluster("logs", 1).await;
    kafka.produce_generated("logs", 10, 50).await.expect("produce");
    let mut c = common::consumer::consumer(&zk.connect_string(), "logs", "logs").start().await.expect("start");
    common::within("a message", Duration::from_secs(10), common::recv(&mut c)).await.expect("a message").ack();
    // The broker goes away under the consumer: librdkafka logs the failed
    // connections (and reports them as errors, which `recv` hands over).
    let broker = kafka.live_brokers()[0];
    kafka.broker_down(broker).await.expect("broker down");
    let seen = zkbalance::testkit::wait_until("a librdkafka warning in tracing", Duration::from_secs(20), || {
        let recorder = recorder.clone();
        async move {
            let events = recorder.0.lock();
            events.iter().find(|(level, target, _)| target == "librdkafka" && *level <= tracing::Level::WARN).cloned()
        }
    })
    .await
    .expect("librdkafka's log reaches tracing");
    eprintln!("seen: {seen:?}");
    let error = common::within("an error from recv", Duration::from_secs(10), c.recv()).await.expect("running");
    assert!(error.is_err(), "the outage is handed over too: {:?}", error.map(|m| m.offset()));
    // With the only broker down, the final commit fails after the Kafka
    // timeout instead of librdkafka's own (about 45 s).
    c.stop().await.expect("stop");
}
