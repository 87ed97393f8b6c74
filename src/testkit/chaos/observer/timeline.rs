//! The observer's bookkeeping, kept apart from ZooKeeper so it can be
//! tested alone: every incarnation of every watched znode path, built from
//! three sources that arrive out of step with one another.
//!
//! - **Watch events** (create, delete) arrive in the server's order, so the
//!   k-th create of a path and its k-th delete belong to one incarnation,
//!   and they tell when it began and ended (upper bounds: an event is
//!   stamped when we receive it).
//! - **Reads** sent when a create event arrives give its creation zxid,
//!   `ctime` and payload. A read for the k-th create may come back after
//!   the znode was deleted (no node) or replaced (a later incarnation), so
//!   it carries k and is matched by zxid and `ctime`.
//! - **Samples** of the whole group (every few ms) prove a znode still
//!   existed when the sample began, and repair what a reconnect lost: the
//!   server does not replay events missed while disconnected.

use std::collections::BTreeMap;

/// What a read of one znode returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    pub czxid: i64,
    /// Server `ctime`, µs (the server stamps ms).
    pub ctime_us: u64,
    /// The member an owner znode names, or a member znode's id.
    pub who: String,
    /// The session holding the (ephemeral) znode.
    pub session: i64,
}

/// One life of one znode path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incarnation {
    /// When its create event arrived (or its creation time, when only a
    /// sample saw it).
    pub created_ev_us: u64,
    /// What a read or sample found, if any did before it went.
    pub read: Option<Read>,
    /// When we last had proof it existed (0: never).
    pub last_seen_us: u64,
    /// When we first knew it was gone.
    pub gone_us: Option<u64>,
    /// Its delete event arrived, or a resynchronising sample gave it up:
    /// a later delete event belongs to a later incarnation.
    closed: bool,
    /// When its read was applied; a sample that began earlier cannot say
    /// it is gone.
    known_us: u64,
}

/// A `ctime` has ms resolution; events within one ms cannot be ordered by it.
const MS: u64 = 1_000;

/// Every incarnation of every path, in order.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    paths: BTreeMap<String, Vec<Incarnation>>,
}

impl Timeline {
    /// A create event for `path` arrived at `at`; returns its index, for
    /// the read it triggers.
    pub fn created(&mut self, path: &str, at: u64) -> usize {
        let lives = self.paths.entry(path.to_owned()).or_default();
        // Not seen yet: by the time the event arrives it may be gone.
        lives.push(Incarnation {
            created_ev_us: at,
            read: None,
            last_seen_us: 0,
            gone_us: None,
            closed: false,
            known_us: 0,
        });
        lives.len() - 1
    }

    /// A delete event for `path` arrived at `at`: it ends the oldest
    /// incarnation no delete event has ended yet.
    pub fn deleted(&mut self, path: &str, at: u64) {
        let Some(life) = self.paths.get_mut(path).and_then(|lives| lives.iter_mut().find(|l| !l.closed)) else {
            return;
        };
        life.closed = true;
        life.gone_us = Some(life.gone_us.map_or(at, |g| g.min(at)));
    }

    /// The read sent at `sent` for the `k`-th create of `path` returned `r`.
    /// It shows the znode present when the server ran it, which is the k-th
    /// incarnation unless that one had already gone and another replaced it.
    pub fn read(&mut self, path: &str, k: usize, sent: u64, r: Read, now: u64) {
        let Some(lives) = self.paths.get_mut(path) else { return };
        let seen = sent.max(r.ctime_us);
        if let Some(j) = lives.iter().position(|l| l.read.as_ref().is_some_and(|x| x.czxid == r.czxid)) {
            // Seen before: at least the k-th, so a lower guess was wrong.
            if j < k && lives.get(k).is_some_and(|l| l.read.is_none()) {
                let moved = lives[j].read.take();
                lives[k].read = moved;
                lives[k].known_us = lives[j].known_us;
                lives[j].known_us = 0;
                lives[k].last_seen_us = lives[k].last_seen_us.max(seen);
            } else {
                lives[j].last_seen_us = lives[j].last_seen_us.max(seen);
            }
            return;
        }
        // Created after the k-th create event arrived: a later incarnation.
        let later = |l: &Incarnation| l.read.is_none() && r.ctime_us <= l.created_ev_us + MS;
        let target = match lives.get(k) {
            Some(l) if l.read.is_none() && r.ctime_us <= l.created_ev_us + MS => Some(k),
            _ => lives.iter().skip(k + 1).position(later).map(|i| i + k + 1),
        };
        if let Some(t) = target {
            let life = &mut lives[t];
            life.read = Some(r);
            life.known_us = now;
            life.last_seen_us = life.last_seen_us.max(seen);
        }
    }

    /// A sample that began at `begun` and ended at `t` found `present`
    /// (path and read of every watched znode). After a reconnect (`resync`)
    /// it also closes what it no longer finds, whose delete events were
    /// lost.
    pub fn sampled(&mut self, present: &[(String, Read)], begun: u64, t: u64, resync: bool) {
        for (path, r) in present {
            let lives = self.paths.entry(path.clone()).or_default();
            let seen = begun.max(r.ctime_us);
            if let Some(l) = lives.iter_mut().find(|l| l.read.as_ref().is_some_and(|x| x.czxid == r.czxid)) {
                l.last_seen_us = l.last_seen_us.max(seen);
            } else if let Some(l) = lives.iter_mut().find(|l| !l.closed && l.read.is_none()) {
                l.read = Some(r.clone());
                l.known_us = t;
                l.last_seen_us = l.last_seen_us.max(seen);
            } else {
                // Its create event was lost (or came before we watched).
                lives.push(Incarnation {
                    created_ev_us: r.ctime_us,
                    read: Some(r.clone()),
                    last_seen_us: seen,
                    gone_us: None,
                    closed: false,
                    known_us: t,
                });
            }
        }
        for (path, lives) in &mut self.paths {
            for l in lives.iter_mut().filter(|l| l.gone_us.is_none()) {
                let found =
                    present.iter().any(|(p, r)| p == path && l.read.as_ref().is_some_and(|x| x.czxid == r.czxid));
                let provable = match &l.read {
                    Some(_) => l.known_us != 0 && l.known_us < begun,
                    None => resync && l.created_ev_us < begun,
                };
                if !found && provable {
                    l.gone_us = Some(t);
                    l.closed |= resync;
                }
            }
        }
    }

    /// Every incarnation, with its path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Incarnation)> {
        self.paths.iter().flat_map(|(p, lives)| lives.iter().map(move |l| (p.as_str(), l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(czxid: i64, ctime_ms: u64, who: &str) -> Read {
        Read { czxid, ctime_us: ctime_ms * 1000, who: who.into(), session: 1 }
    }

    const P: &str = "/consumers/g/owners/t/0";

    #[test]
    fn events_and_reads_make_one_incarnation() {
        let mut t = Timeline::default();
        let k = t.created(P, 10_200);
        t.read(P, k, 10_300, read(7, 10, "a"), 10_600);
        t.deleted(P, 17_000);
        let lives: Vec<_> = t.iter().collect();
        assert_eq!(lives.len(), 1);
        let l = lives[0].1;
        assert_eq!(l.read.as_ref().map(|r| r.who.as_str()), Some("a"));
        assert_eq!((l.last_seen_us, l.gone_us), (10_300, Some(17_000)));
    }

    #[test]
    fn a_read_after_the_delete_event_still_lands_on_its_incarnation() {
        let mut t = Timeline::default();
        let k = t.created(P, 10_200);
        t.deleted(P, 12_000);
        let k2 = t.created(P, 13_000);
        t.read(P, k, 10_300, read(7, 10, "a"), 13_100);
        t.read(P, k2, 13_050, read(9, 13, "b"), 13_200);
        t.deleted(P, 20_000);
        let who: Vec<_> = t.iter().map(|(_, l)| (l.read.clone().map(|r| r.who), l.gone_us)).collect();
        assert_eq!(who, vec![(Some("a".into()), Some(12_000)), (Some("b".into()), Some(20_000))]);
    }

    #[test]
    fn a_read_that_found_the_next_incarnation_moves_to_it() {
        let mut t = Timeline::default();
        let k = t.created(P, 10_200);
        t.deleted(P, 10_400);
        let k2 = t.created(P, 12_500);
        // The first read ran after the replacement: it found znode 9.
        t.read(P, k, 10_300, read(9, 12, "b"), 12_700);
        t.read(P, k2, 12_600, read(9, 12, "b"), 12_800);
        let lives: Vec<_> = t.iter().map(|(_, l)| l.read.clone().map(|r| r.czxid)).collect();
        assert_eq!(lives, vec![None, Some(9)], "the first life stays unread");
    }

    #[test]
    fn a_sample_refreshes_and_closes_only_what_it_can_prove() {
        let mut t = Timeline::default();
        let k = t.created(P, 10_200);
        t.read(P, k, 10_300, read(7, 10, "a"), 10_400);
        t.sampled(&[(P.into(), read(7, 10, "a"))], 30_000, 31_000, false);
        assert_eq!(t.iter().next().map(|(_, l)| l.last_seen_us), Some(30_000));
        // Gone from a later sample, its delete event not yet handled.
        t.sampled(&[], 50_000, 51_000, false);
        t.deleted(P, 52_000);
        let l = t.iter().next().map(|(_, l)| l.clone()).expect("one");
        assert_eq!(l.gone_us, Some(51_000), "the earlier bound wins");
        assert!(l.closed, "the delete event still closed it");
    }

    #[test]
    fn a_resync_closes_lives_whose_delete_was_lost_and_adds_unseen_ones() {
        let mut t = Timeline::default();
        let k = t.created(P, 10_200);
        t.read(P, k, 10_300, read(7, 10, "a"), 10_400);
        // Disconnected: the delete of 7 and the create of 9 were lost.
        t.sampled(&[(P.into(), read(9, 40, "b"))], 50_000, 51_000, true);
        t.deleted(P, 60_000);
        let lives: Vec<_> = t.iter().map(|(_, l)| (l.read.clone().map(|r| r.czxid), l.gone_us)).collect();
        assert_eq!(lives, vec![(Some(7), Some(51_000)), (Some(9), Some(60_000))]);
    }
}
