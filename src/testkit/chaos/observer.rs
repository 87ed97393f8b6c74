//! An outside observer of a group, over a session of its own: a persistent
//! recursive watch on the group's znodes records every owner and member
//! znode as it comes and goes, a read of each new znode learns whom it
//! names, and a sample of the whole group every few milliseconds proves
//! which znodes still exist and repairs what a reconnect lost. How the
//! three are reconciled is in [`timeline`].
//!
//! Sampling alone missed owner znodes that lived less than one period; the
//! checker then found deliveries "without an owner znode" that had one.

mod timeline;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::{AddWatchMode, Client, EventType, PersistentWatcher, SessionState, Stat, WatchedEvent};

use super::checker::{MemberZnode, OwnerZnode};
use super::now_us;
use crate::ids::{GroupId, TopicName};
use crate::znode::{layout, Codec, Flavour, OwnerName, PykafkaOwner, ScalaOwner, TopicSpelling};
use timeline::{Read, Timeline};

const PERIOD: Duration = Duration::from_millis(20);

/// What the observer saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Owner znodes by creation zxid (negative keys: znodes that went
    /// before a read could learn whom they named; their member is empty).
    pub owners: BTreeMap<i64, OwnerZnode>,
    /// Member znodes by creation zxid (negative keys: never read).
    pub members: BTreeMap<i64, MemberZnode>,
    /// Samples taken, and how many failed.
    pub samples: (u64, u64),
    /// Owner znodes seen only by their events.
    pub unread: usize,
}

impl Observed {
    /// Partition → members owning it now (an empty name: an owner znode
    /// not read yet).
    pub fn current_owners(&self) -> BTreeMap<i32, Vec<String>> {
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for z in self.owners.values().filter(|z| z.gone_us.is_none()) {
            let owners = out.entry(z.partition).or_default();
            if !owners.contains(&z.member) {
                owners.push(z.member.clone());
            }
        }
        out
    }
}

/// A running observer.
pub(crate) struct Observer {
    latest: watch::Receiver<Observed>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a watched path holds.
enum Subject {
    Owner(i32),
    Member(String),
}

type ReadDone = (String, usize, u64, Result<(Vec<u8>, Stat), zookeeper_client::Error>);

/// Which znodes are watched, and how to read them.
struct Scope {
    zk: Client,
    flavour: Flavour,
    group: GroupId,
    topic: TopicName,
}

struct Observing {
    scope: Scope,
    /// Gone after a terminal session state (its channel closes then).
    watcher: Option<PersistentWatcher>,
    reads: FuturesUnordered<Pin<Box<dyn Future<Output = ReadDone> + Send>>>,
    timeline: Timeline,
    /// Events may have been lost since the last good sample.
    resync: bool,
    samples: (u64, u64),
}

impl Scope {
    fn spellings(&self) -> &'static [TopicSpelling] {
        match self.flavour {
            Flavour::Pykafka => &TopicSpelling::ALL,
            Flavour::Scala => &[TopicSpelling::Plain],
        }
    }

    fn classify(&self, path: &str) -> Option<Subject> {
        let (dir, child) = path.rsplit_once('/')?;
        if dir == layout::members(&self.group) {
            return Some(Subject::Member(child.to_owned()));
        }
        let owned = self.spellings().iter().any(|&s| layout::owner_dir(&self.group, &self.topic, s) == dir);
        let name = OwnerName::parse(self.flavour, dir, child).ok().filter(|_| owned)?;
        Some(Subject::Owner(name.partition().0))
    }

    fn decode(&self, subject: &Subject, data: &[u8], stat: &Stat) -> Read {
        let who = match subject {
            Subject::Member(id) => id.clone(),
            Subject::Owner(_) => {
                let decoded = match self.flavour {
                    Flavour::Pykafka => PykafkaOwner::decode_payload(data).map(|o| o.0.to_string()).ok(),
                    Flavour::Scala => ScalaOwner::decode_payload(data).map(|o| o.member.to_string()).ok(),
                };
                decoded.unwrap_or_else(|| String::from_utf8_lossy(data).into_owned())
            }
        };
        Read { czxid: stat.czxid, ctime_us: ctime_us(stat.ctime), who, session: stat.ephemeral_owner }
    }

    async fn sample(&self) -> Result<Vec<(String, Read)>, zookeeper_client::Error> {
        let mut dirs: Vec<String> =
            self.spellings().iter().map(|&s| layout::owner_dir(&self.group, &self.topic, s)).collect();
        dirs.push(layout::members(&self.group));
        let mut present = Vec::new();
        for dir in dirs {
            let children = match self.zk.list_children(&dir).await {
                Ok(c) => c,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            for child in children {
                let path = format!("{dir}/{child}");
                let Some(subject) = self.classify(&path) else { continue };
                match self.zk.get_data(&path).await {
                    Ok((data, stat)) => {
                        let r = self.decode(&subject, &data, &stat);
                        present.push((path, r));
                    }
                    Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(present)
    }
}

impl Observing {
    fn on_event(&mut self, ev: WatchedEvent) {
        let at = now_us();
        match ev.event_type {
            EventType::Session => {
                if ev.session_state.is_terminated() {
                    self.watcher = None;
                } else if ev.session_state == SessionState::Disconnected {
                    self.resync = true;
                }
            }
            EventType::NodeCreated if self.scope.classify(&ev.path).is_some() => {
                let k = self.timeline.created(&ev.path, at);
                // Sent now (the client writes requests when they are made),
                // so the server runs it as close to the create as it can.
                let read = self.scope.zk.get_data(&ev.path);
                let path = ev.path;
                self.reads.push(Box::pin(async move { (path, k, at, read.await) }));
            }
            EventType::NodeDeleted => self.timeline.deleted(&ev.path, at),
            _ => {}
        }
    }

    /// Handles every event already received.
    fn drain_events(&mut self) {
        while let Some(ev) = self.watcher.as_mut().and_then(|w| w.changed().now_or_never()) {
            self.on_event(ev);
        }
    }

    fn on_read(&mut self, (path, k, sent, result): ReadDone) {
        let (Ok((data, stat)), Some(subject)) = (result, self.scope.classify(&path)) else { return };
        let r = self.scope.decode(&subject, &data, &stat);
        self.timeline.read(&path, k, sent, r, now_us());
    }

    async fn on_tick(&mut self) {
        self.samples.0 += 1;
        // A sample's reads run between these two instants: a znode it saw
        // existed at the start (or from its creation, if later).
        let begun = now_us();
        let result = self.scope.sample().await;
        let t = now_us();
        // Events the server sent before the sample's last reply are in hand
        // now; handling them first keeps creates and deletes in step.
        self.drain_events();
        match result {
            Ok(present) => {
                self.timeline.sampled(&present, begun, t, self.resync);
                self.resync = false;
            }
            Err(_) => self.samples.1 += 1,
        }
    }

    fn observed(&self) -> Observed {
        let mut out = Observed { samples: self.samples, ..Observed::default() };
        let mut unread_key = 0;
        for (path, l) in self.timeline.iter() {
            let Some(subject) = self.scope.classify(path) else { continue };
            let key = l.read.as_ref().map_or_else(
                || {
                    unread_key -= 1;
                    unread_key
                },
                |r| r.czxid,
            );
            let created_us = l.read.as_ref().map_or(l.created_ev_us, |r| r.ctime_us);
            match subject {
                Subject::Owner(partition) => {
                    out.unread += usize::from(l.read.is_none());
                    let member = l.read.as_ref().map(|r| r.who.clone()).unwrap_or_default();
                    let czxid = l.read.as_ref().map_or(0, |r| r.czxid);
                    let (last_seen_us, gone_us) = (l.last_seen_us.max(created_us), l.gone_us);
                    out.owners.insert(key, OwnerZnode { partition, member, czxid, created_us, last_seen_us, gone_us });
                }
                Subject::Member(member) => {
                    let ephemeral_owner = l.read.as_ref().map_or(0, |r| r.session);
                    out.members.insert(key, MemberZnode { member, ephemeral_owner, created_us, gone_us: l.gone_us });
                }
            }
        }
        out
    }
}

fn ctime_us(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0) * 1000
}

async fn next_event(watcher: &mut Option<PersistentWatcher>) -> WatchedEvent {
    match watcher {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

impl Observer {
    pub(crate) fn start(zk: Client, flavour: Flavour, group: GroupId, topic: TopicName) -> Self {
        let (latest_tx, latest) = watch::channel(Observed::default());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let root = layout::group(&group);
            let watcher = match zk.watch(&root, AddWatchMode::PersistentRecursive).await {
                Ok(w) => Some(w),
                Err(e) => {
                    // Sampling still sees every znode that outlives a period.
                    tracing::warn!(error = %e, "the chaos observer could not watch {root}; sampling only");
                    None
                }
            };
            let mut o = Observing {
                scope: Scope { zk, flavour, group, topic },
                watcher,
                reads: FuturesUnordered::new(),
                timeline: Timeline::default(),
                resync: false,
                samples: (0, 0),
            };
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    ev = next_event(&mut o.watcher) => o.on_event(ev),
                    Some(done) = o.reads.next(), if !o.reads.is_empty() => o.on_read(done),
                    _ = tick.tick() => o.on_tick().await,
                }
                latest_tx.send_replace(o.observed());
            }
            // Reads still in flight finish; events they raced are in hand.
            while let Ok(Some(done)) = tokio::time::timeout(Duration::from_secs(2), o.reads.next()).await {
                o.on_read(done);
            }
            o.drain_events();
            latest_tx.send_replace(o.observed());
        });
        Observer { latest, stop, task }
    }

    /// What was seen so far.
    pub(crate) fn latest(&self) -> Observed {
        self.latest.borrow().clone()
    }

    /// A receiver that changes whenever something was seen.
    pub(crate) fn watch(&self) -> watch::Receiver<Observed> {
        self.latest.clone()
    }

    /// Stops observing; returns everything seen.
    pub(crate) async fn finish(self) -> Observed {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let seen = self.latest.borrow().clone();
        seen
    }
}
