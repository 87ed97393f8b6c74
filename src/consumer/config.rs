//! The consumer builder: group settings, offsets, buffer and Kafka client
//! settings, all validated before anything connects.

use std::sync::Arc;
use std::time::Duration;

use crate::assign::Strategy;
use crate::balance::ConfigError;
use crate::coord::{GroupBuilder, GroupConfig};
use crate::kafka_access::KafkaAccess;
use crate::offsets::{OffsetReset, OffsetStorage};
use crate::znode::Flavour;

use super::{BalancedConsumer, ConsumerError, RebalanceListener};

/// librdkafka properties the consumer sets itself; overriding them would
/// break its guarantees.
const RESERVED: [&str; 5] =
    ["group.id", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof", "auto.offset.reset"];

/// When a delivered message counts as done, for commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AckMode {
    /// When the application calls [`Message::ack`](super::Message::ack)
    /// (or its [`for_each`](super::BalancedConsumer::for_each) handler
    /// returns): at least once for work that finishes after `recv`.
    #[default]
    Explicit,
    /// As soon as [`recv`](super::BalancedConsumer::recv) hands it over,
    /// as pykafka's consumer counts a message consumed: a crash loses the
    /// work in hand (at most once for it), commits never wait for it.
    OnReceipt,
}

/// Builds a [`BalancedConsumer`].
///
/// Defaults: pykafka flavour with offsets in Kafka and `earliest` reset (as
/// pykafka); Scala flavour with offsets in ZooKeeper and `latest` reset (as
/// the Scala consumer); a buffer of 10,000 messages; auto-commit of the
/// acknowledged low watermark every 5 s.
#[derive(Clone)]
pub struct ConsumerBuilder {
    pub(crate) group: GroupBuilder,
    flavour: Flavour,
    storage: Option<OffsetStorage>,
    reset: Option<OffsetReset>,
    buffer: usize,
    auto_commit: Option<Duration>,
    kafka: KafkaAccess,
    kafka_timeout: Duration,
    listener: Option<Arc<dyn RebalanceListener>>,
    ack_mode: AckMode,
    ack_warning: Option<Duration>,
    reset_on_start: bool,
    start_at: super::StartAt,
    round_wait: Duration,
}

impl std::fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerBuilder").field("group", &self.group).field("flavour", &self.flavour).finish()
    }
}

impl Default for ConsumerBuilder {
    fn default() -> Self {
        ConsumerBuilder {
            group: GroupBuilder::default(),
            flavour: Flavour::Pykafka,
            storage: None,
            reset: None,
            buffer: 10_000,
            auto_commit: Some(Duration::from_secs(5)),
            kafka: KafkaAccess::default(),
            kafka_timeout: Duration::from_secs(10),
            listener: None,
            ack_mode: AckMode::Explicit,
            ack_warning: Some(Duration::from_secs(60)),
            reset_on_start: false,
            start_at: super::StartAt::Committed,
            round_wait: Duration::from_secs(1),
        }
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConsumerError {
    ConsumerError::Config(ConfigError { setting, reason: reason.into() })
}

/// Validated settings.
#[derive(Clone)]
pub(crate) struct ConsumerConfig {
    pub group: GroupConfig,
    pub storage: OffsetStorage,
    pub reset: OffsetReset,
    pub buffer: usize,
    pub auto_commit: Option<Duration>,
    /// Which brokers (given, or registered: by which listener), and the
    /// librdkafka properties.
    pub kafka: KafkaAccess,
    pub kafka_timeout: Duration,
    pub listener: Option<Arc<dyn RebalanceListener>>,
    pub ack_mode: AckMode,
    pub ack_warning: Option<Duration>,
    pub reset_on_start: bool,
    pub start_at: super::StartAt,
    pub round_wait: Duration,
}

impl ConsumerBuilder {
    /// The ZooKeeper connect string, `host:port[,host:port...][/chroot]`.
    pub fn zookeeper(mut self, connect: impl Into<String>) -> Self {
        self.group = self.group.zookeeper(connect);
        self
    }

    /// How to reach and authenticate to a secured ZooKeeper, and the ACL
    /// of the member's znodes (see [`ZkAccess`](crate::coord::ZkAccess)).
    pub fn zookeeper_access(mut self, access: crate::coord::ZkAccess) -> Self {
        self.group = self.group.zookeeper_access(access);
        self
    }

    /// The consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = self.group.group(group);
        self
    }

    /// A topic to consume (call again for more: Scala flavour).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.group = self.group.topic(topic);
        self
    }

    /// A topic to consume with `streams` consumer threads in the
    /// assignment (Scala flavour).
    pub fn topic_streams(mut self, topic: impl Into<String>, streams: u32) -> Self {
        self.group = self.group.topic_streams(topic, streams);
        self
    }

    /// Consume every topic matching `regex`, now and later (Scala flavour;
    /// see [`GroupBuilder::whitelist`]).
    pub fn whitelist(mut self, regex: impl Into<String>) -> Self {
        self.group = self.group.whitelist(regex);
        self
    }

    /// Consume every topic not matching `regex` (Scala flavour; see
    /// [`GroupBuilder::blacklist`]).
    pub fn blacklist(mut self, regex: impl Into<String>) -> Self {
        self.group = self.group.blacklist(regex);
        self
    }

    /// The group's layout and its defaults (offset storage, reset).
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = flavour;
        self.group = self.group.flavour(flavour);
        self
    }

    /// The assignment strategy (default: the flavour's range).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.group = self.group.strategy(strategy);
        self
    }

    /// A static member id: a restart within the session timeout keeps its
    /// partitions, without a peer rebalancing (see
    /// [`GroupBuilder::member_id`](crate::coord::GroupBuilder::member_id)).
    pub fn member_id(mut self, id: impl Into<String>) -> Self {
        self.group = self.group.member_id(id);
        self
    }

    /// The ZooKeeper session timeout.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.group = self.group.session_timeout(timeout);
        self
    }

    /// Any other group setting (claim backoff, revoke timeout, ...).
    pub fn membership(mut self, f: impl FnOnce(GroupBuilder) -> GroupBuilder) -> Self {
        self.group = f(self.group);
        self
    }

    /// Where committed offsets live.
    pub fn offset_storage(mut self, storage: OffsetStorage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Where to start a partition with no committed offset.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.reset = Some(reset);
        self
    }

    /// Messages fetched ahead of the application; fetching pauses when full.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages;
        self
    }

    /// Commit the acknowledged low watermark every `interval`; `None` to
    /// commit only on [`BalancedConsumer::commit`], revoke and stop.
    pub fn auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.auto_commit = interval;
        self
    }

    /// How to reach Kafka, all at once: given brokers or a listener, and
    /// librdkafka properties (replaces what the other Kafka setters set).
    pub fn kafka_access(mut self, access: KafkaAccess) -> Self {
        self.kafka = access;
        self
    }

    /// Use the brokers' endpoints of this listener name (as in Kafka's
    /// `listeners=NAME://…`). Default: the first endpoint speaking the
    /// `security.protocol` given with [`kafka_property`](Self::kafka_property)
    /// (PLAINTEXT when none is).
    pub fn listener_name(mut self, name: impl Into<String>) -> Self {
        self.kafka.listener = Some(name.into());
        self
    }

    /// Kafka brokers to bootstrap from (default: those registered in
    /// ZooKeeper).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.kafka.bootstrap = Some(servers.into());
        self
    }

    /// A librdkafka property for the fetching client (e.g.
    /// `fetch.max.bytes`). The consumer's own properties are refused.
    pub fn kafka_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.kafka.properties.push((key.into(), value.into()));
        self
    }

    /// Longest wait for a Kafka offset request.
    pub fn kafka_timeout(mut self, timeout: Duration) -> Self {
        self.kafka_timeout = timeout;
        self
    }

    /// When a message counts as done (default: [`AckMode::Explicit`]).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Warn ([`ConsumeError::AckOverdue`](super::ConsumeError::AckOverdue),
    /// a `tracing` warning and a counter) when one unacknowledged message
    /// has held its partition's commits back this long; `None` never
    /// warns. Default 60 s.
    pub fn ack_warning(mut self, bound: Option<Duration>) -> Self {
        self.ack_warning = bound;
        self
    }

    /// Start the partitions of this consumer's first assignment at the
    /// [`offset_reset`](Self::offset_reset) end, ignoring committed
    /// offsets (pykafka's `reset_offset_on_start`: later assignments resume
    /// from the committed offsets). Default: off, as both reference clients.
    pub fn reset_offset_on_start(mut self, reset: bool) -> Self {
        self.reset_on_start = reset;
        self
    }

    /// Where each partition starts the first time this consumer owns it,
    /// whatever its committed offset (kcat's `-o`); later assignments of it
    /// resume from the committed offset. Default
    /// [`StartAt::Committed`](super::StartAt::Committed). Start offsets an
    /// `on_assigned` listener returns take precedence.
    pub fn start_at(mut self, at: super::StartAt) -> Self {
        self.start_at = at;
        self
    }

    /// Callbacks around rebalances. With a listener, a rebalance's newly
    /// owned partitions start together once it settles, after one
    /// [`on_assigned`](RebalanceListener::on_assigned) call with them all
    /// (see [`listener_round_wait`](Self::listener_round_wait)); without
    /// one, each starts as soon as its claim completes.
    pub fn listener(mut self, listener: impl RebalanceListener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// With a listener: how long the partitions a rebalance granted wait
    /// for it to settle before they start anyway. A rebalance settles in
    /// milliseconds unless a claim waits for a crashed peer's owner znode
    /// to expire (up to its session timeout); past this bound the
    /// partitions claimed so far are announced and started, and the rest
    /// come in a later `on_assigned` call. Default 1 s.
    pub fn listener_round_wait(mut self, wait: Duration) -> Self {
        self.round_wait = wait;
        self
    }

    pub(crate) fn build(self) -> Result<ConsumerConfig, ConsumerError> {
        // A bad group setting is a bad consumer setting: one variant for both.
        let group = self.group.build().map_err(|e| match e {
            crate::coord::CoordError::Config(c) => ConsumerError::Config(c),
            other => ConsumerError::Group(other),
        })?;
        if self.buffer == 0 {
            return Err(invalid("buffer", "must hold at least one message"));
        }
        if self.auto_commit.is_some_and(|d| d.is_zero()) {
            return Err(invalid("auto_commit", "the interval must be positive (None turns it off)"));
        }
        if self.round_wait.is_zero() {
            return Err(invalid("listener_round_wait", "must be positive"));
        }
        if self.ack_warning.is_some_and(|d| d.is_zero()) {
            return Err(invalid("ack_warning", "the bound must be positive (None turns it off)"));
        }
        if self.kafka_timeout.is_zero() {
            return Err(invalid("kafka_timeout", "must be positive"));
        }
        if let Some(b) = &self.kafka.bootstrap {
            if b.split(',')
                .any(|s| s.trim().rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
            {
                return Err(invalid("bootstrap_servers", format!("{b:?} is not host:port[,host:port...]")));
            }
        }
        if let Some((k, _)) = self.kafka.properties.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
            return Err(invalid("kafka_property", format!("{k} is set by the consumer itself")));
        }
        let reset = self.reset.unwrap_or(match self.flavour {
            Flavour::Pykafka => OffsetReset::Earliest,
            Flavour::Scala => OffsetReset::Latest,
        });
        if self.reset_on_start && self.start_at != super::StartAt::Committed {
            return Err(invalid("start_at", "cannot be combined with reset_offset_on_start (choose one)"));
        }
        if self.reset_on_start && reset == OffsetReset::Error {
            return Err(invalid("reset_offset_on_start", "needs an offset_reset of earliest or latest, not error"));
        }
        Ok(ConsumerConfig {
            group,
            storage: self.storage.unwrap_or(match self.flavour {
                Flavour::Pykafka => OffsetStorage::Kafka,
                Flavour::Scala => OffsetStorage::Zookeeper,
            }),
            reset,
            buffer: self.buffer,
            auto_commit: self.auto_commit,
            kafka: self.kafka,
            kafka_timeout: self.kafka_timeout,
            listener: self.listener,
            ack_mode: self.ack_mode,
            ack_warning: self.ack_warning,
            reset_on_start: self.reset_on_start,
            start_at: self.start_at,
            round_wait: self.round_wait,
        })
    }

    /// Validates, connects, joins the group and starts fetching.
    pub async fn start(self) -> Result<BalancedConsumer, ConsumerError> {
        BalancedConsumer::start(self.build()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ConsumerBuilder {
        ConsumerBuilder::default().zookeeper("127.0.0.1:2181/kafka").group("g").topic("t")
    }

    fn refused(b: ConsumerBuilder) -> String {
        match b.build() {
            Err(ConsumerError::Config(c)) => c.setting.to_owned(),
            Err(e) => panic!("expected a config error, got {e}"),
            Ok(_) => panic!("expected a config error"),
        }
    }

    #[test]
    fn defaults_follow_the_flavour() {
        let c = base().build().expect("valid");
        assert_eq!((c.storage, c.reset), (OffsetStorage::Kafka, OffsetReset::Earliest));
        let c = base().flavour(Flavour::Scala).build().expect("valid");
        assert_eq!((c.storage, c.reset), (OffsetStorage::Zookeeper, OffsetReset::Latest));
        assert_eq!(c.buffer, 10_000);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        assert_eq!(refused(base().buffer(0)), "buffer");
        assert_eq!(refused(base().auto_commit(Some(Duration::ZERO))), "auto_commit");
        assert_eq!(refused(base().kafka_timeout(Duration::ZERO)), "kafka_timeout");
        assert_eq!(refused(base().ack_warning(Some(Duration::ZERO))), "ack_warning");
        assert_eq!(refused(base().listener_round_wait(Duration::ZERO)), "listener_round_wait");
        assert_eq!(refused(base().reset_offset_on_start(true).start_at(super::super::StartAt::End)), "start_at");
        assert_eq!(
            refused(base().offset_reset(OffsetReset::Error).reset_offset_on_start(true)),
            "reset_offset_on_start"
        );
        assert_eq!(refused(base().bootstrap_servers("localhost")), "bootstrap_servers");
        assert_eq!(refused(base().bootstrap_servers("a:1,b:x")), "bootstrap_servers");
        assert_eq!(refused(base().kafka_property("enable.auto.commit", "true")), "kafka_property");
        assert_eq!(refused(ConsumerBuilder::default().group("g").topic("t")), "zookeeper");
        assert_eq!(refused(base().session_timeout(Duration::ZERO)), "session_timeout");
        assert!(base().bootstrap_servers("a:1,b:2").kafka_property("fetch.max.bytes", "1000").build().is_ok());
    }
}
