//! What a simulation runs: the settings, the workload and fault schedule,
//! and what comes back.

use std::time::Duration;

use crate::assign::Strategy;
#[cfg(feature = "mutants")]
use crate::balance::Mutant;
use crate::znode::Flavour;

/// One scheduled change to the world. Member indices are taken modulo the
/// members alive at that moment, so any schedule is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new member joins.
    Join,
    /// A member leaves cleanly.
    Leave(u8),
    /// A member's process dies (no cleanup; its session lingers).
    Crash(u8),
    /// A member's process dies and is restarted at once with the same
    /// member id (a static member): the new incarnation takes over the
    /// lingering session's member and owner znodes.
    Restart(u8),
    /// A member's process pauses (GC) for this many ms: no timers, no
    /// heartbeats, no delivery; its session may expire meanwhile.
    Stall(u8, u16),
    /// A member loses its connection for this many ms.
    Disconnect(u8, u16),
    /// The server expires a member's session now.
    Expire(u8),
    /// The topic gains partitions.
    AddPartitions(u8),
    /// A partition's leader moves to another broker.
    MoveLeader(u8),
    /// A broker goes down (its registration vanishes and its partitions get
    /// new leaders) or, if down, comes back.
    FlipBroker(u8),
    /// A foreign peer that does not follow the protocol (a stuck pykafka
    /// consumer) holds a partition's owner znode, in pykafka's Python 3
    /// spelling, for this many ms.
    ForeignClaim(u8, u16),
    /// A peer of another client registers in two requests (kafka-node):
    /// its member znode is empty for the first many ms, then holds its
    /// registration (a Scala peer: a wildcard with one key per topic, as
    /// kafka-node writes it); the peer leaves after the second many ms
    /// more. It claims nothing, so while it is readable its share is
    /// unowned — but no member may act on a view that leaves it out while
    /// it is not.
    TwoStepPeer(u16, u16),
    /// Nothing happens for this many ms.
    Wait(u16),
}

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice (delays, lags, losses, jitter).
    pub seed: u64,
    /// Members at the start.
    pub members: u8,
    /// Topics of the group (pykafka members consume one each, in turn;
    /// Scala members all of them, every third by a whitelist).
    pub topics: u8,
    /// Partitions of each topic at the start.
    pub partitions: u8,
    /// Brokers (leaders are spread over them).
    pub brokers: u8,
    /// Group layout.
    pub flavour: Flavour,
    /// Assignment strategy.
    pub strategy: Strategy,
    /// Session timeout, in virtual time.
    pub session_timeout: Duration,
    /// Gap between scheduled steps.
    pub step_gap: Duration,
    /// Chance that a watch notification due while disconnected is lost.
    pub lose_notifications: f64,
    /// How many states behind a read may lag.
    pub max_read_lag: usize,
    /// Chance that a packet is held up 100–600 ms (a stalled connection),
    /// so answers can arrive after the session that asked died.
    pub slow_replies: f64,
    /// A broken machine to run instead of the real one.
    #[cfg(feature = "mutants")]
    pub mutant: Option<Mutant>,
    /// Keep a readable timeline.
    pub timeline: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            members: 3,
            topics: 1,
            partitions: 8,
            brokers: 3,
            flavour: Flavour::Pykafka,
            strategy: Strategy::PykafkaRange,
            session_timeout: Duration::from_millis(1000),
            step_gap: Duration::from_millis(150),
            lose_notifications: 0.3,
            max_read_lag: 2,
            slow_replies: 0.01,
            #[cfg(feature = "mutants")]
            mutant: None,
            timeline: false,
        }
    }
}

/// A broken invariant, with when it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time in ms.
    pub at_ms: u64,
    /// Which invariant.
    pub invariant: &'static str,
    /// What exactly.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} ms] {}: {}", self.at_ms, self.invariant, self.detail)
    }
}

/// What a simulation found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Broken invariants (empty: all held). The run stops at the first.
    pub violations: Vec<Violation>,
    /// Who did what, when (when asked for).
    pub timeline: Vec<String>,
    /// Rebalance rounds run by all members.
    pub rebalances: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Distinct states seen (group view + ownership), for exhaustive mode.
    pub states: u64,
}

impl Report {
    /// One line: what ran, and whether every invariant held.
    pub fn summary(&self) -> String {
        format!(
            "{} events, {} rebalances, {} ms simulated, {} states; {}",
            self.events,
            self.rebalances,
            self.virtual_time.as_millis(),
            self.states,
            match self.violations.first() {
                None => "every invariant held".to_owned(),
                Some(v) => format!("invariant broken: {v}"),
            }
        )
    }
}

/// A deterministic pseudo-random source (splitmix64): the simulator's only
/// randomness, so a seed replays byte for byte.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds it.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A random schedule of `len` steps, for runs from a seed alone.
pub fn random_steps(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    (0..len)
        .map(|_| {
            let m = rng.below(8) as u8;
            match rng.below(20) {
                0..=3 => Step::Join,
                4..=5 => Step::Leave(m),
                6 => Step::Crash(m),
                7 => Step::Restart(m),
                8 => Step::Stall(m, 200 + rng.below(1800) as u16),
                9..=10 => Step::Disconnect(m, 100 + rng.below(1900) as u16),
                11 => Step::Expire(m),
                12 => Step::AddPartitions(1 + rng.below(3) as u8),
                13 => Step::MoveLeader(rng.below(16) as u8),
                14 => Step::ForeignClaim(rng.below(16) as u8, 500 + rng.below(4000) as u16),
                15 => Step::FlipBroker(rng.below(4) as u8),
                16 => Step::TwoStepPeer(rng.below(2500) as u16, rng.below(3000) as u16),
                _ => Step::Wait(rng.below(500) as u16),
            }
        })
        .collect()
}
