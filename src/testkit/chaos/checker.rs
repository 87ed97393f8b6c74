//! The fault suite's checker: a verdict over everything a run recorded —
//! every delivery (member, session, generation, partition, offset, wall
//! time), every owner and member znode seen by an outside observer, what
//! was produced, and what the harness did to the members.
//!
//! What it reports, and how it decides (times are wall-clock µs; ZooKeeper
//! stamps znodes with the server's wall clock in ms, on the same machine):
//! - **lost**: a produced offset that no member delivered.
//! - **duplicates**: an offset delivered again. A repeat is *attributed* when
//!   the ownership that delivered it first ended uncleanly — its member was
//!   killed, or its session ended without a clean stop (the member later
//!   delivered under a newer session, or its member znode of that session
//!   vanished while it was not stopping). Any other repeat is flagged.
//! - **concurrent double delivery**: two ownerships (member, session,
//!   generation) of one partition whose delivery intervals overlap.
//! - **deliveries by a non-owner**: a delivery while another member's owner
//!   znode of the partition existed, or while the member had none.
//! - **non-monotonic**: within one ownership, an offset not above the last.
//! - **double owners**: owner znodes of one partition naming different
//!   members, alive at once.
//! - **unowned**: a partition without an owner znode for longer than twice
//!   the session timeout while some member process was up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One message handed to the application, as the member reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Member id.
    pub member: String,
    /// The member's session number (0, then one more per new session).
    pub session: u64,
    /// The assignment generation that granted the partition.
    pub generation: u64,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: u64,
    /// When it was handed over (wall clock, µs).
    pub at_us: u64,
    /// Order among this member's deliveries.
    pub seq: u64,
}

/// An owner znode as an observer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerZnode {
    /// Partition.
    pub partition: i32,
    /// The member its payload names.
    pub member: String,
    /// Creation zxid (identifies the znode).
    pub czxid: i64,
    /// Creation time (the server's `ctime`, µs).
    pub created_us: u64,
    /// The last sample that saw it.
    pub last_seen_us: u64,
    /// The first sample that did not (it was deleted in between).
    pub gone_us: Option<u64>,
}

/// A member znode as an observer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberZnode {
    /// Member id.
    pub member: String,
    /// The session that holds it.
    pub ephemeral_owner: i64,
    /// Creation time (µs).
    pub created_us: u64,
    /// The first sample that did not see it.
    pub gone_us: Option<u64>,
}

/// What the harness did to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEvent {
    /// The process started.
    Started,
    /// Asked to stop cleanly (SIGTERM).
    Stopping,
    /// The process exited or was killed (SIGKILL).
    Gone,
    /// Killed with SIGKILL.
    Killed,
}

/// Everything one run recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every delivery.
    pub deliveries: Vec<Delivery>,
    /// Every owner znode seen.
    pub owners: Vec<OwnerZnode>,
    /// Every member znode seen.
    pub members: Vec<MemberZnode>,
    /// (time, member id, event), in time order.
    pub events: Vec<(u64, String, MemberEvent)>,
    /// Messages produced per partition (offsets `0..n`).
    pub produced: BTreeMap<i32, u64>,
    /// When the group first settled: the unowned and owner-change checks
    /// start here.
    pub steady_from_us: u64,
    /// When the harness began winding the run down (production stopped,
    /// members about to leave): owner changes are counted until here.
    pub wind_down_us: u64,
    /// When recording ended.
    pub end_us: u64,
}

/// The verdict. Every list holds one line per finding.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Deliveries checked.
    pub deliveries: usize,
    /// Messages produced.
    pub produced: u64,
    /// Produced offsets nobody delivered: `partition@offset`.
    pub lost: Vec<String>,
    /// Repeated deliveries, attributed or not.
    pub duplicates: usize,
    /// Repeats explained by an unclean end.
    pub attributed: usize,
    /// Repeats nothing explains.
    pub unattributed: Vec<String>,
    /// Overlapping ownerships of one partition.
    pub concurrent: Vec<String>,
    /// Deliveries by a member that did not own the partition.
    pub non_owner: Vec<String>,
    /// Offsets that went back within one ownership.
    pub non_monotonic: Vec<String>,
    /// Partitions owned by two members at once.
    pub double_owners: Vec<String>,
    /// Partitions left unowned too long.
    pub unowned: Vec<String>,
    /// Owner znodes created after the group first settled and before the
    /// run was wound down.
    pub owner_changes: usize,
}

impl Verdict {
    /// Every violation of a safety or liveness rule, one line each.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |what: &str, list: &[String]| {
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
                out.push(format!("{} {what}: {}", list.len(), shown.join("; ")));
            }
        };
        add("lost", &self.lost);
        add("unattributed duplicates", &self.unattributed);
        add("concurrent double deliveries", &self.concurrent);
        add("deliveries by a non-owner", &self.non_owner);
        add("non-monotonic deliveries", &self.non_monotonic);
        add("double owners", &self.double_owners);
        add("partitions unowned too long", &self.unowned);
        out
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        format!(
            "{} produced, {} deliveries, {} lost, {} duplicates ({} attributed), {} concurrent, {} by a non-owner, \
             {} non-monotonic, {} double owners, {} unowned too long, {} owner changes after settling",
            self.produced,
            self.deliveries,
            self.lost.len(),
            self.duplicates,
            self.attributed,
            self.concurrent.len(),
            self.non_owner.len(),
            self.non_monotonic.len(),
            self.double_owners.len(),
            self.unowned.len(),
            self.owner_changes
        )
    }
}

/// Slack for comparing a member's clock reading with a znode's `ctime`
/// (milliseconds, rounded down by the server).
const TOLERANCE_US: u64 = 2_000;

type Ownership = (String, u64, u64);

fn ownership(d: &Delivery) -> Ownership {
    (d.member.clone(), d.session, d.generation)
}

/// Judges a history; `session_timeout` bounds how long a partition may
/// stay unowned (twice it).
pub fn check(h: &History, session_timeout: Duration) -> Verdict {
    let mut v = Verdict { deliveries: h.deliveries.len(), produced: h.produced.values().sum(), ..Verdict::default() };
    let mut by_offset: BTreeMap<(i32, u64), Vec<&Delivery>> = BTreeMap::new();
    for d in &h.deliveries {
        by_offset.entry((d.partition, d.offset)).or_default().push(d);
    }
    for (&p, &n) in &h.produced {
        for o in 0..n {
            if !by_offset.contains_key(&(p, o)) {
                v.lost.push(format!("{p}@{o}"));
            }
        }
    }
    let unclean = unclean_ends(h);
    for ((p, o), ds) in &mut by_offset {
        ds.sort_by_key(|d| d.at_us);
        for pair in ds.windows(2) {
            v.duplicates += 1;
            let first = (pair[0].member.clone(), pair[0].session);
            if unclean.contains(&first) {
                v.attributed += 1;
            } else {
                v.unattributed.push(format!(
                    "{p}@{o} by {} (session {}) then {} (session {})",
                    pair[0].member, pair[0].session, pair[1].member, pair[1].session
                ));
            }
        }
    }
    check_ownerships(h, &mut v);
    check_owners(h, session_timeout, &mut v);
    v
}

/// Ownerships (member, session) that ended without a clean stop: every
/// session of a killed member; every session but a member's last (a newer
/// one replaced it, which happens only after an expiry); and the last one
/// if a member znode it held vanished before the member was asked to stop.
fn unclean_ends(h: &History) -> BTreeSet<(String, u64)> {
    let mut sessions: BTreeMap<&str, BTreeMap<u64, u64>> = BTreeMap::new();
    for d in &h.deliveries {
        let first = sessions.entry(&d.member).or_default().entry(d.session).or_insert(d.at_us);
        *first = (*first).min(d.at_us);
    }
    let mut out = BTreeSet::new();
    for (member, ss) in &sessions {
        let killed = h.events.iter().any(|(_, who, e)| who == member && *e == MemberEvent::Killed);
        let stopping = h.events.iter().find(|(_, who, e)| who == member && *e == MemberEvent::Stopping).map(|e| e.0);
        let (&last, &last_from) = ss.iter().next_back().expect("at least one session");
        let last_expired = h.members.iter().any(|z| {
            z.member == *member
                && z.created_us <= last_from + TOLERANCE_US
                && z.gone_us.is_some_and(|g| g > last_from && stopping.is_none_or(|s| g < s))
        });
        for &s in ss.keys() {
            if s < last || killed || last_expired {
                out.insert((member.to_string(), s));
            }
        }
    }
    out
}

fn check_ownerships(h: &History, v: &mut Verdict) {
    // Per partition and ownership: first and last delivery, and order.
    let mut spans: BTreeMap<i32, BTreeMap<Ownership, (u64, u64)>> = BTreeMap::new();
    let mut ordered: Vec<&Delivery> = h.deliveries.iter().collect();
    ordered.sort_by(|a, b| (&a.member, a.seq).cmp(&(&b.member, b.seq)));
    let mut last: BTreeMap<(i32, Ownership), u64> = BTreeMap::new();
    for d in &ordered {
        let key = ownership(d);
        let span = spans.entry(d.partition).or_default().entry(key.clone()).or_insert((d.at_us, d.at_us));
        span.0 = span.0.min(d.at_us);
        span.1 = span.1.max(d.at_us);
        if let Some(prev) = last.insert((d.partition, key), d.offset) {
            if d.offset <= prev {
                v.non_monotonic.push(format!(
                    "{}@{} after {prev} by {} (session {}, generation {})",
                    d.partition, d.offset, d.member, d.session, d.generation
                ));
            }
        }
    }
    for (p, owners) in &spans {
        let list: Vec<(&Ownership, &(u64, u64))> = owners.iter().collect();
        for (i, (a, sa)) in list.iter().enumerate() {
            for (b, sb) in &list[i + 1..] {
                if sa.0 < sb.1 && sb.0 < sa.1 {
                    let overlap = sa.1.min(sb.1) - sa.0.max(sb.0);
                    v.concurrent.push(format!(
                        "partition {p}: {} (session {}, generation {}) and {} (session {}, generation {}) overlap for {:.1} ms",
                        a.0, a.1, a.2, b.0, b.1, b.2,
                        overlap as f64 / 1000.0
                    ));
                }
            }
        }
    }
    let mut owners: BTreeMap<i32, Vec<&OwnerZnode>> = BTreeMap::new();
    for z in &h.owners {
        owners.entry(z.partition).or_default().push(z);
    }
    for d in &h.deliveries {
        let zs = owners.get(&d.partition).map(Vec::as_slice).unwrap_or_default();
        let foreign = zs.iter().find(|z| {
            !z.member.is_empty()
                && z.member != d.member
                && z.created_us + TOLERANCE_US <= d.at_us
                && d.at_us + TOLERANCE_US <= z.last_seen_us
        });
        let own = zs.iter().any(|z| {
            z.member == d.member
                && z.created_us <= d.at_us + TOLERANCE_US
                && z.gone_us.is_none_or(|g| d.at_us <= g + TOLERANCE_US)
        });
        if let Some(z) = foreign {
            v.non_owner.push(format!(
                "{}@{} by {} at {} while {}'s owner znode (czxid {}) existed",
                d.partition, d.offset, d.member, d.at_us, z.member, z.czxid
            ));
        } else if !own {
            v.non_owner
                .push(format!("{}@{} by {} at {} without an owner znode", d.partition, d.offset, d.member, d.at_us));
        }
    }
}

fn check_owners(h: &History, session_timeout: Duration, v: &mut Verdict) {
    let mut owners: BTreeMap<i32, Vec<&OwnerZnode>> = BTreeMap::new();
    for z in &h.owners {
        owners.entry(z.partition).or_default().push(z);
        if (h.steady_from_us..h.wind_down_us).contains(&z.created_us) {
            v.owner_changes += 1;
        }
    }
    for (p, zs) in &owners {
        for (i, a) in zs.iter().enumerate() {
            for b in &zs[i + 1..] {
                let named = !a.member.is_empty() && !b.member.is_empty();
                // A `ctime` is rounded down to the ms: a znode may have
                // been created up to then.
                let overlap =
                    a.created_us + TOLERANCE_US < b.last_seen_us && b.created_us + TOLERANCE_US < a.last_seen_us;
                if named && a.member != b.member && overlap {
                    v.double_owners.push(format!("partition {p}: {} and {} at once", a.member, b.member));
                }
            }
        }
    }
    let live = live_intervals(h);
    let limit = u64::try_from((session_timeout * 2).as_micros()).unwrap_or(u64::MAX);
    for &p in h.produced.keys() {
        let mut present: Vec<(u64, u64)> = owners
            .get(&p)
            .map(|zs| zs.iter().map(|z| (z.created_us, z.gone_us.unwrap_or(h.end_us))).collect())
            .unwrap_or_default();
        present.sort_unstable();
        let mut covered = h.steady_from_us;
        let mut gaps = Vec::new();
        for (from, to) in present {
            if from > covered {
                gaps.push((covered, from));
            }
            covered = covered.max(to);
        }
        if covered < h.end_us {
            gaps.push((covered, h.end_us));
        }
        for (from, to) in gaps {
            let unowned: u64 = live.iter().map(|&(a, b)| b.min(to).saturating_sub(a.max(from))).sum();
            if unowned > limit {
                v.unowned
                    .push(format!("partition {p} unowned for {:.1} s while members were up", unowned as f64 / 1e6));
            }
        }
    }
}

/// When at least one member process was up.
fn live_intervals(h: &History) -> Vec<(u64, u64)> {
    let mut up: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    let mut since = None;
    for (t, m, e) in &h.events {
        match e {
            MemberEvent::Started => {
                up.insert(m);
            }
            MemberEvent::Gone | MemberEvent::Killed => {
                up.remove(m.as_str());
            }
            MemberEvent::Stopping => {}
        }
        match (since, up.is_empty()) {
            (None, false) => since = Some(*t),
            (Some(s), true) => {
                out.push((s, *t));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, h.end_us));
    }
    out
}

#[cfg(test)]
mod tests;
