//! The group builder: every setting validated before anything connects.

use std::collections::BTreeMap;
use std::time::Duration;

use super::access::ZkAccess;

use crate::assign::Strategy;
use crate::balance::{BalanceConfig, ConfigError};
use crate::ids::{GroupId, MemberId, TopicName};
use crate::protocol::TopicFilter;
use crate::znode::{Flavour, Subscription};

use super::{CoordError, GroupMember};

/// Validated settings of a group membership.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `host:port[,host:port...][/chroot]`.
    pub zookeeper: String,
    /// Credentials, SASL, TLS and the ACL of our znodes.
    pub access: ZkAccess,
    /// The group.
    pub group: GroupId,
    /// What this member consumes, registered as the Scala consumer (or
    /// pykafka) writes it.
    pub subscription: Subscription,
    /// Whether wildcard subscriptions (everyone's, as this member reads
    /// them) leave Kafka's internal topics out: Scala's
    /// `exclude.internal.topics`, on by default. Every member of a group
    /// must agree on it.
    pub exclude_internal_topics: bool,
    /// Rebalance settings (member id, flavour, strategy, timings) for the
    /// requested session timeout; the member runs with
    /// [`GroupConfig::balance_for`] the timeout the server negotiates.
    pub balance: BalanceConfig,
    /// Longest wait to connect to ZooKeeper.
    pub connect_timeout: Duration,
    /// Longest wait for the application to let go of a revoked partition
    /// before its owner znode is deleted anyway (and the overrun counted).
    pub revoke_timeout: Duration,
    /// The margin and retries as given; `None` derives them from the
    /// session timeout actually in force.
    suspend_margin: Option<Duration>,
    claim_retries: Option<u32>,
    unreadable_bound: Option<Duration>,
}

impl GroupConfig {
    /// The topics subscribed by name (none for a wildcard subscription).
    pub fn named_topics(&self) -> Vec<TopicName> {
        match &self.subscription {
            Subscription::Static(topics) => topics.iter().map(|(t, _)| t.clone()).collect(),
            Subscription::Whitelist { .. } | Subscription::Blacklist { .. } => Vec::new(),
        }
    }

    /// The rebalance settings for a session of `timeout`: the server may
    /// negotiate another timeout than the one requested, and the suspend
    /// margin and the claim window must fit the real one.
    ///
    /// # Errors
    /// [`ConfigError`] when a setting given explicitly cannot work with
    /// this timeout (e.g. a claim window shorter than the session).
    pub fn balance_for(&self, timeout: Duration) -> Result<BalanceConfig, ConfigError> {
        let mut b = self.balance.clone();
        b.session_timeout = timeout;
        b.suspend_margin = self.suspend_margin.unwrap_or_else(|| BalanceConfig::default_suspend_margin(timeout));
        b.unreadable_bound = self.unreadable_bound.unwrap_or_else(|| BalanceConfig::default_unreadable_bound(timeout));
        b.claim_retries = match self.claim_retries {
            Some(n) => n,
            None => (1..=64)
                .find(|&n| {
                    b.claim_retries = n;
                    b.claim_window() > timeout * 2
                })
                .unwrap_or(64),
        };
        b.validate()?;
        Ok(b)
    }
}

/// Builds a [`GroupMember`]. Defaults follow the legacy consumers where they
/// are safe (6 s sessions, range assignment) and depart where they are not
/// (claim retries outlast the session timeout; watch events are coalesced).
#[derive(Debug, Clone)]
pub struct GroupBuilder {
    zookeeper: Option<String>,
    access: ZkAccess,
    group: Option<String>,
    topics: Vec<(String, u32)>,
    wildcard: Option<(String, bool)>,
    wildcard_streams: u32,
    exclude_internal_topics: bool,
    flavour: Flavour,
    strategy: Option<Strategy>,
    member_id: Option<String>,
    session_timeout: Duration,
    connect_timeout: Duration,
    coalesce: Duration,
    backoff: (Duration, Duration),
    claim_retries: Option<u32>,
    suspend_margin: Option<Duration>,
    unreadable_bound: Option<Duration>,
    reconcile_interval: Duration,
    revoke_timeout: Duration,
    seed: Option<u64>,
    #[cfg(feature = "mutants")]
    mutant: Option<crate::balance::Mutant>,
}

impl Default for GroupBuilder {
    fn default() -> Self {
        GroupBuilder {
            zookeeper: None,
            access: ZkAccess::default(),
            group: None,
            topics: Vec::new(),
            wildcard: None,
            wildcard_streams: 1,
            exclude_internal_topics: true,
            flavour: Flavour::Pykafka,
            strategy: None,
            member_id: None,
            session_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(10),
            coalesce: Duration::from_millis(50),
            backoff: (Duration::from_millis(100), Duration::from_secs(2)),
            claim_retries: None,
            suspend_margin: None,
            unreadable_bound: None,
            reconcile_interval: Duration::from_secs(30),
            revoke_timeout: Duration::from_secs(10),
            seed: None,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> CoordError {
    CoordError::Config(ConfigError { setting, reason: reason.into() })
}

/// The member's subscription from the builder's topics or wildcard.
fn subscription(
    topics: Vec<(String, u32)>,
    wildcard: Option<(String, bool)>,
    wildcard_streams: u32,
    flavour: Flavour,
) -> Result<Subscription, CoordError> {
    const PYKAFKA: &str = "a pykafka-flavour member consumes exactly one topic with one stream (pykafka's own rule)";
    if let Some((regex, white)) = wildcard {
        let setting = if white { "whitelist" } else { "blacklist" };
        if !topics.is_empty() {
            return Err(invalid(setting, "a member subscribes by topic names or by a wildcard, not both"));
        }
        if flavour == Flavour::Pykafka {
            return Err(invalid(setting, PYKAFKA));
        }
        if wildcard_streams == 0 {
            return Err(invalid("wildcard_streams", "at least one stream"));
        }
        TopicFilter::new(&regex, white).map_err(|e| invalid(setting, e))?;
        return Ok(if white {
            Subscription::Whitelist { regex, streams: wildcard_streams }
        } else {
            Subscription::Blacklist { regex, streams: wildcard_streams }
        });
    }
    if topics.is_empty() {
        return Err(invalid("topic", "at least one topic (or a whitelist or blacklist) is required"));
    }
    let mut named: BTreeMap<TopicName, u32> = BTreeMap::new();
    for (t, streams) in topics {
        let name = TopicName::new(t).map_err(|e| invalid("topic", e.to_string()))?;
        if streams == 0 {
            return Err(invalid("topic_streams", format!("{name}: at least one stream")));
        }
        named.insert(name, streams);
    }
    if flavour == Flavour::Pykafka && (named.len() != 1 || named.values().any(|s| *s != 1)) {
        return Err(invalid("topic", PYKAFKA));
    }
    Ok(Subscription::Static(named.into_iter().collect()))
}

impl GroupBuilder {
    /// The ZooKeeper connect string, with an optional chroot.
    pub fn zookeeper(mut self, connect: impl Into<String>) -> Self {
        self.zookeeper = Some(connect.into());
        self
    }

    /// How to reach and authenticate to a secured ZooKeeper, and the ACL
    /// of the znodes the member creates (see [`ZkAccess`]).
    pub fn zookeeper_access(mut self, access: ZkAccess) -> Self {
        self.access = access;
        self
    }

    /// The group id.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Consume `topic` with one stream.
    pub fn topic(self, topic: impl Into<String>) -> Self {
        self.topic_streams(topic, 1)
    }

    /// Consume `topic` with `streams` threads (Scala flavour).
    pub fn topic_streams(mut self, topic: impl Into<String>, streams: u32) -> Self {
        self.topics.push((topic.into(), streams));
        self
    }

    /// Consume every topic whose whole name matches `regex` (Java syntax,
    /// commas meaning alternation, as Kafka's `Whitelist`), including
    /// topics created later (Scala flavour).
    pub fn whitelist(mut self, regex: impl Into<String>) -> Self {
        self.wildcard = Some((regex.into(), true));
        self
    }

    /// Consume every topic whose name does not match `regex` (Kafka's
    /// `Blacklist`; Scala flavour).
    pub fn blacklist(mut self, regex: impl Into<String>) -> Self {
        self.wildcard = Some((regex.into(), false));
        self
    }

    /// Streams per topic of a wildcard subscription (default 1).
    pub fn wildcard_streams(mut self, streams: u32) -> Self {
        self.wildcard_streams = streams;
        self
    }

    /// Whether wildcards leave internal topics (`__consumer_offsets`,
    /// `__transaction_state`) out (default true, as Scala's
    /// `exclude.internal.topics`).
    pub fn exclude_internal_topics(mut self, exclude: bool) -> Self {
        self.exclude_internal_topics = exclude;
        self
    }

    /// The group's layout (default pykafka).
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = flavour;
        self
    }

    /// The strategy (default: the flavour's range).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// A static member id: a restart within the session timeout replaces the
    /// previous incarnation's member znode at once — the member set never
    /// changes, so no peer rebalances — and gets its partitions back once
    /// the previous session's owner znodes expire. Must be unique per live
    /// process.
    pub fn member_id(mut self, id: impl Into<String>) -> Self {
        self.member_id = Some(id.into());
        self
    }

    /// The ZooKeeper session timeout (default 6 s).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The longest wait to connect (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The coalescing window (default 50 ms): a watch event arriving with
    /// no group read in the last window is acted on at once; events within
    /// the window of the last read are gathered into one read at its end.
    pub fn coalesce(mut self, window: Duration) -> Self {
        self.coalesce = window;
        self
    }

    /// Claim backoff: first wait and cap (default 100 ms, 2 s).
    pub fn claim_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    /// Claim attempts before giving up (default: enough to outlast the
    /// session timeout twice).
    pub fn claim_retries(mut self, retries: u32) -> Self {
        self.claim_retries = Some(retries);
        self
    }

    /// Stop delivering this long before the session could expire, counted
    /// from the send time of the last request that confirmed the session
    /// (default two fifths of the negotiated session timeout: safe on any
    /// server whose timeout is at least twice its `tickTime`, see
    /// docs/coordination.md). The member confirms its session every tenth
    /// of the timeout, so with a 6 s session and the default, delivery
    /// stops 3.0–3.6 s into an outage or a process pause — and the session
    /// cannot expire before 6 s.
    pub fn suspend_margin(mut self, margin: Duration) -> Self {
        self.suspend_margin = Some(margin);
        self
    }

    /// How long a member znode that cannot be read (empty, garbage, another
    /// flavour) holds the group's rebalances before the flavour's reference
    /// client rule applies: a pykafka group counts it out, as pykafka does;
    /// a Scala group stays blocked and reports it (default twice the
    /// negotiated session timeout, so a peer that dies mid-registration is
    /// gone first).
    pub fn unreadable_bound(mut self, bound: Duration) -> Self {
        self.unreadable_bound = Some(bound);
        self
    }

    /// Period of the full re-read that repairs lost watches (default 30 s).
    pub fn reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = interval;
        self
    }

    /// Longest wait for the application to release a revoked partition
    /// (default 10 s).
    pub fn revoke_timeout(mut self, timeout: Duration) -> Self {
        self.revoke_timeout = timeout;
        self
    }

    /// Seed of the backoff jitter (default random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs a deliberately broken member (tests of the fault suite and the
    /// simulator only; the `mutants` feature).
    #[cfg(feature = "mutants")]
    pub fn mutant(mut self, mutant: crate::balance::Mutant) -> Self {
        self.mutant = Some(mutant);
        self
    }

    /// Validates every setting.
    pub fn build(self) -> Result<GroupConfig, CoordError> {
        let zookeeper =
            self.zookeeper.filter(|z| !z.trim().is_empty()).ok_or_else(|| invalid("zookeeper", "required"))?;
        super::connect::check(&zookeeper)?;
        self.access.validate()?;
        let group = GroupId::new(self.group.ok_or_else(|| invalid("group", "required"))?)
            .map_err(|e| invalid("group", e.to_string()))?;
        let subscription = subscription(self.topics, self.wildcard, self.wildcard_streams, self.flavour)?;
        let strategy = self.strategy.unwrap_or(match self.flavour {
            Flavour::Pykafka => Strategy::PykafkaRange,
            Flavour::Scala => Strategy::ScalaRange,
        });
        let compatible = match strategy {
            Strategy::PykafkaRange | Strategy::PykafkaRoundRobin => self.flavour == Flavour::Pykafka,
            Strategy::ScalaRange | Strategy::ScalaRoundRobin => self.flavour == Flavour::Scala,
            Strategy::Sticky => true,
        };
        if !compatible {
            return Err(invalid("strategy", format!("{strategy:?} does not belong to the {} flavour", self.flavour)));
        }
        let member = match self.member_id {
            Some(id) => MemberId::new(id).map_err(|e| invalid("member_id", e.to_string()))?,
            None => {
                let uuid = uuid::Uuid::new_v4();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let id = match self.flavour {
                    Flavour::Pykafka => crate::znode::pykafka_member_id(&hostname(), uuid),
                    Flavour::Scala => crate::znode::scala_member_id(&group, &hostname(), now, uuid),
                };
                id.map_err(|e| invalid("member_id", e.to_string()))?
            }
        };
        let mut balance = BalanceConfig::new(member, self.flavour, strategy);
        balance.coalesce = self.coalesce;
        (balance.backoff_initial, balance.backoff_max) = self.backoff;
        balance.reconcile_interval = self.reconcile_interval;
        balance.seed = self.seed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        #[cfg(feature = "mutants")]
        {
            balance.mutant = self.mutant;
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "must be positive"));
        }
        if self.revoke_timeout.is_zero() {
            return Err(invalid("revoke_timeout", "must be positive"));
        }
        let mut config = GroupConfig {
            zookeeper,
            access: self.access,
            group,
            subscription,
            exclude_internal_topics: self.exclude_internal_topics,
            balance,
            connect_timeout: self.connect_timeout,
            revoke_timeout: self.revoke_timeout,
            suspend_margin: self.suspend_margin,
            claim_retries: self.claim_retries,
            unreadable_bound: self.unreadable_bound,
        };
        config.balance = config.balance_for(self.session_timeout).map_err(CoordError::Config)?;
        Ok(config)
    }

    /// Validates, connects, registers and starts balancing.
    pub async fn join(self) -> Result<GroupMember, CoordError> {
        GroupMember::join(self.build()?).await
    }
}
