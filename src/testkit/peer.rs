//! Other clients of the Scala layout, behaving as they do in the wild
//! (kafka-node 3.0.1's `HighLevelConsumer`, docs in `COMPAT.md`): a member
//! znode created empty and filled by a second request, wildcard maps with
//! one key per topic, bare member ids in owner znodes. The Scala range
//! assignment is written out here independently of the crate's assignors,
//! so a test comparing the two catches a divergence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use super::TestkitError;

/// A peer of another client in one group, on a session of its own.
pub struct ScalaLayoutPeer {
    zk: Client,
    group: String,
    id: String,
}

/// The owner znodes of `topic` in `group` as they stand: partition →
/// payload as written (a thread id, or a bare member id from kafka-node).
/// Names that are not partition numbers and znodes gone between the list
/// and the read are left out: callers poll this until it converges.
pub async fn owner_payloads(zk: &Client, group: &str, topic: &str) -> BTreeMap<i32, String> {
    let dir = format!("/consumers/{group}/owners/{topic}");
    let mut out = BTreeMap::new();
    for child in zk.list_children(&dir).await.unwrap_or_default() {
        if let (Ok(p), Ok((data, _))) = (child.parse::<i32>(), zk.get_data(&format!("{dir}/{child}")).await) {
            out.insert(p, String::from_utf8_lossy(&data).into_owned());
        }
    }
    out
}

/// Scala range: for each topic, the subscribed threads `<member>-<n>`
/// sorted as strings, partitions numerically, the first `partitions %
/// threads` threads taking one extra. `members`: member → topic → streams.
/// Returns topic → partition → thread id.
pub fn scala_range(
    members: &BTreeMap<String, BTreeMap<String, u32>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<i32, String>> {
    let mut out = BTreeMap::new();
    for (topic, n) in partitions {
        let mut threads: Vec<String> = members
            .iter()
            .filter_map(|(m, subs)| subs.get(topic).map(|s| (m, *s)))
            .flat_map(|(m, s)| (0..s).map(move |i| format!("{m}-{i}")))
            .collect();
        threads.sort();
        let mut owners = BTreeMap::new();
        if !threads.is_empty() {
            let (per, extra) = (*n as usize / threads.len(), *n as usize % threads.len());
            for (i, thread) in threads.iter().enumerate() {
                let start = per * i + i.min(extra);
                let count = per + usize::from(i < extra);
                for p in start..start + count {
                    owners.insert(p as i32, thread.clone());
                }
            }
        }
        out.insert(topic.clone(), owners);
    }
    out
}

impl ScalaLayoutPeer {
    /// Connects a peer `id` of `group`.
    pub async fn connect(connect: &str, group: &str, id: &str, session: Duration) -> Result<Self, TestkitError> {
        let zk = super::connect(connect, session).await?;
        Ok(ScalaLayoutPeer { zk, group: group.to_owned(), id: id.to_owned() })
    }

    /// Its member id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its member znode.
    pub fn member_path(&self) -> String {
        format!("/consumers/{}/ids/{}", self.group, self.id)
    }

    /// The first of kafka-node's two registration requests: the member
    /// znode, empty.
    pub async fn register_empty(&self) -> Result<(), TestkitError> {
        self.register(b"").await
    }

    /// Creates the member znode holding `payload` (ephemeral, parents made).
    pub async fn register(&self, payload: &[u8]) -> Result<(), TestkitError> {
        let dir = format!("/consumers/{}/ids", self.group);
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match self.zk.mkdir(&dir, &persistent).await {
            Ok(()) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(TestkitError::zk("mkdir", dir)(e)),
        }
        let path = self.member_path();
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        self.zk.create(&path, payload, &ephemeral).await.map_err(TestkitError::zk("create", path))?;
        Ok(())
    }

    /// The second request: the registration written into the member znode.
    pub async fn fill(&self, payload: &[u8]) -> Result<(), TestkitError> {
        let path = self.member_path();
        self.zk.set_data(&path, payload, None).await.map_err(TestkitError::zk("set", path))?;
        Ok(())
    }

    /// Creates the owner znodes of `partitions` of `topic` holding
    /// `payload`; each one held by another member is waited for (a watch on
    /// its deletion) and created the moment it goes, within `limit` in all.
    pub async fn claim(
        &self,
        topic: &str,
        partitions: &BTreeSet<i32>,
        payload: &[u8],
        limit: Duration,
    ) -> Result<(), TestkitError> {
        let dir = format!("/consumers/{}/owners/{topic}", self.group);
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match self.zk.mkdir(&dir, &persistent).await {
            Ok(()) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(TestkitError::zk("mkdir", dir)(e)),
        }
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        let deadline = tokio::time::Instant::now() + limit;
        for p in partitions {
            let path = format!("{dir}/{p}");
            loop {
                match self.zk.create(&path, payload, &ephemeral).await {
                    Ok(_) => break,
                    Err(ZkError::NodeExists) => {}
                    Err(e) => return Err(TestkitError::zk("create", path)(e)),
                }
                let (stat, watcher) =
                    self.zk.check_and_watch_stat(&path).await.map_err(TestkitError::zk("watch", path.clone()))?;
                if stat.is_some() {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if tokio::time::timeout(left, watcher.changed()).await.is_err() {
                        return Err(TestkitError::Timeout { what: format!("{path} to be released"), waited: limit });
                    }
                }
            }
        }
        Ok(())
    }

    /// Leaves: dropping the last client closes its session, and its
    /// ephemerals go.
    pub fn close(self) {
        drop(self.zk);
    }

    /// Its client, for anything else a test has it do.
    pub fn client(&self) -> &Client {
        &self.zk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scala_range_matches_the_scala_consumer_on_a_worked_example() {
        // Two members, one with two streams, over 5 partitions: threads
        // a-0, a-1, b-0 take 2, 2 and 1 partitions in that order.
        let members: BTreeMap<String, BTreeMap<String, u32>> = [
            ("a".to_string(), [("t".to_string(), 2)].into_iter().collect()),
            ("b".to_string(), [("t".to_string(), 1), ("u".to_string(), 1)].into_iter().collect()),
        ]
        .into_iter()
        .collect();
        let parts: BTreeMap<String, i32> = [("t".to_string(), 5), ("u".to_string(), 2)].into_iter().collect();
        let got = scala_range(&members, &parts);
        let t: Vec<&str> = got["t"].values().map(String::as_str).collect();
        assert_eq!(t, ["a-0", "a-0", "a-1", "a-1", "b-0"]);
        let u: Vec<&str> = got["u"].values().map(String::as_str).collect();
        assert_eq!(u, ["b-0", "b-0"]);
    }
}
