//! An outside observer of a group: samples its owner and member znodes
//! every few milliseconds over a session of its own, and keeps each znode
//! once, with the server's creation time, the last sample that saw it and
//! the first that did not. Samples that fail (ZooKeeper down) leave what
//! was known untouched.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::Client;

use super::checker::{MemberZnode, OwnerZnode};
use super::now_us;
use crate::ids::{GroupId, TopicName};
use crate::znode::{layout, Codec, Flavour, OwnerName, PykafkaOwner, ScalaOwner};

const PERIOD: Duration = Duration::from_millis(20);

/// What the observer saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Owner znodes by creation zxid.
    pub owners: BTreeMap<i64, OwnerZnode>,
    /// Member znodes by creation zxid.
    pub members: BTreeMap<i64, MemberZnode>,
    /// Samples taken, and how many failed.
    pub samples: (u64, u64),
}

impl Observed {
    /// Partition → members owning it at the last successful sample.
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

struct Sampler {
    zk: Client,
    flavour: Flavour,
    group: GroupId,
    topic: TopicName,
}

/// (czxid, partition, member, ctime ms) of one owner znode.
type OwnerRead = (i64, i32, String, i64);
/// (czxid, member, session, ctime ms) of one member znode.
type MemberRead = (i64, String, i64, i64);

impl Sampler {
    fn owner_member(&self, bytes: &[u8]) -> String {
        let decoded = match self.flavour {
            Flavour::Pykafka => PykafkaOwner::decode_payload(bytes).map(|o| o.0.to_string()).ok(),
            Flavour::Scala => ScalaOwner::decode_payload(bytes).map(|o| o.member.to_string()).ok(),
        };
        decoded.unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
    }

    async fn sample(&self) -> Result<(Vec<OwnerRead>, Vec<MemberRead>), zookeeper_client::Error> {
        let spellings: &[crate::znode::TopicSpelling] = match self.flavour {
            Flavour::Pykafka => &crate::znode::TopicSpelling::ALL,
            Flavour::Scala => &[crate::znode::TopicSpelling::Plain],
        };
        let mut owners = Vec::new();
        for &spelling in spellings {
            let dir = layout::owner_dir(&self.group, &self.topic, spelling);
            let children = match self.zk.list_children(&dir).await {
                Ok(c) => c,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            for child in children {
                let Ok(name) = OwnerName::parse(self.flavour, &dir, &child) else { continue };
                match self.zk.get_data(&format!("{dir}/{child}")).await {
                    Ok((data, stat)) => {
                        owners.push((stat.czxid, name.partition().0, self.owner_member(&data), stat.ctime))
                    }
                    Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let ids = layout::members(&self.group);
        let mut members = Vec::new();
        let children = match self.zk.list_children(&ids).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        for child in children {
            match self.zk.check_stat(&format!("{ids}/{child}")).await {
                Ok(Some(stat)) => members.push((stat.czxid, child, stat.ephemeral_owner, stat.ctime)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((owners, members))
    }
}

fn ctime_us(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0) * 1000
}

impl Observer {
    pub(crate) fn start(zk: Client, flavour: Flavour, group: GroupId, topic: TopicName) -> Self {
        let (latest_tx, latest) = watch::channel(Observed::default());
        let (stop, mut stopped) = watch::channel(false);
        let sampler = Sampler { zk, flavour, group, topic };
        let task = tokio::spawn(async move {
            let mut seen = Observed::default();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                seen.samples.0 += 1;
                // A sample's reads run between these two instants: a znode it
                // saw existed at the start (or from its creation, if later);
                // one it missed was gone by the end.
                let begun = now_us();
                let result = sampler.sample().await;
                let t = now_us();
                let Ok((owners, members)) = result else {
                    seen.samples.1 += 1;
                    continue;
                };
                for z in seen.owners.values_mut().filter(|z| z.gone_us.is_none()) {
                    if !owners.iter().any(|o| o.0 == z.czxid) {
                        z.gone_us = Some(t);
                    }
                }
                for (czxid, partition, member, ctime) in owners {
                    let seen_at = begun.max(ctime_us(ctime));
                    let z = seen.owners.entry(czxid).or_insert_with(|| OwnerZnode {
                        partition,
                        member,
                        czxid,
                        created_us: ctime_us(ctime),
                        last_seen_us: seen_at,
                        gone_us: None,
                    });
                    z.last_seen_us = z.last_seen_us.max(seen_at);
                }
                for (czxid, z) in seen.members.iter_mut().filter(|(_, z)| z.gone_us.is_none()) {
                    if !members.iter().any(|m| m.0 == *czxid) {
                        z.gone_us = Some(t);
                    }
                }
                for (czxid, member, session, ctime) in members {
                    seen.members.entry(czxid).or_insert_with(|| MemberZnode {
                        member,
                        ephemeral_owner: session,
                        created_us: ctime_us(ctime),
                        gone_us: None,
                    });
                }
                latest_tx.send_replace(seen.clone());
            }
            latest_tx.send_replace(seen);
        });
        Observer { latest, stop, task }
    }

    /// What was seen so far.
    pub(crate) fn latest(&self) -> Observed {
        self.latest.borrow().clone()
    }

    /// A receiver that changes at every successful sample.
    pub(crate) fn watch(&self) -> watch::Receiver<Observed> {
        self.latest.clone()
    }

    /// Stops sampling; returns everything seen.
    pub(crate) async fn finish(self) -> Observed {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let seen = self.latest.borrow().clone();
        seen
    }
}
