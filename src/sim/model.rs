//! An in-memory ZooKeeper, faithful to what the state machine relies on:
//! sessions that expire on the server's clock and take their ephemerals
//! with them, one-shot watches, `NodeExists`/`NoNode`, versioned deletes,
//! atomic multi-creates, and reads that may be served from an older state
//! (ZooKeeper reads are sequentially consistent, not linearizable: a client
//! sees its own writes, but may lag everyone else's).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::balance::Time;
use crate::protocol::ops::{MultiFailure, Stat, Write};
use crate::zk_call::ZkCode;

/// A session id in the model.
pub type SessionId = u64;

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Znode {
    /// Payload.
    pub data: Vec<u8>,
    /// Data version.
    pub version: i32,
    /// Creation zxid.
    pub czxid: i64,
    /// The owning session of an ephemeral.
    pub owner: Option<SessionId>,
    /// Creation time, virtual ms.
    pub ctime: i64,
}

impl Znode {
    /// Its stat, as a server reports it.
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            version: self.version,
            ephemeral_owner: self.owner.map_or(0, |s| s as i64),
            ctime: self.ctime,
        }
    }
}

type Tree = BTreeMap<String, Znode>;

/// The watches a change fired: (session, what).
pub type Fired = Vec<(SessionId, WatchOn)>;

#[derive(Debug, Clone)]
struct Session {
    timeout: Time,
    last_heard: Time,
    alive: bool,
}

/// What a watch is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchOn {
    /// The children of a path.
    Children(String),
    /// A node's existence and data.
    Node(String),
}

/// The model. Every write returns the sessions whose watches fired.
#[derive(Debug, Clone)]
pub struct ZkModel {
    tree: Tree,
    zxid: i64,
    /// Recent states, oldest first, for stale reads.
    history: VecDeque<(i64, Arc<Tree>)>,
    sessions: BTreeMap<SessionId, Session>,
    next_session: SessionId,
    watches: BTreeSet<(WatchOn, SessionId)>,
}

/// A read-only view of one state of the tree.
#[derive(Debug, Clone)]
pub struct View {
    /// The zxid it reflects.
    pub zxid: i64,
    tree: Arc<Tree>,
}

impl View {
    /// A node.
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.tree.get(path)
    }

    /// The names of a node's children, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        children_of(&self.tree, path)
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn children_of(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
    tree.range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| !k[prefix.len()..].contains('/'))
        .map(|(k, _)| k[prefix.len()..].to_owned())
        .collect()
}

const HISTORY: usize = 8;

impl Default for ZkModel {
    fn default() -> Self {
        let mut tree = Tree::new();
        tree.insert("/".into(), Znode { data: Vec::new(), version: 0, czxid: 0, owner: None, ctime: 0 });
        ZkModel {
            history: VecDeque::from([(0, Arc::new(tree.clone()))]),
            tree,
            zxid: 0,
            sessions: BTreeMap::new(),
            next_session: 1,
            watches: BTreeSet::new(),
        }
    }
}

impl ZkModel {
    /// Opens a session.
    pub fn open_session(&mut self, timeout: Time, now: Time) -> SessionId {
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(id, Session { timeout, last_heard: now, alive: true });
        id
    }

    /// Whether the server still holds the session.
    pub fn alive(&self, s: SessionId) -> bool {
        self.sessions.get(&s).is_some_and(|x| x.alive)
    }

    /// The server heard from the session.
    pub fn touch(&mut self, s: SessionId, now: Time) -> Result<(), ZkCode> {
        match self.sessions.get_mut(&s) {
            Some(x) if x.alive => {
                x.last_heard = x.last_heard.max(now);
                Ok(())
            }
            _ => Err(ZkCode::SessionExpired),
        }
    }

    /// Expires every session not heard from for its timeout; returns the
    /// expired sessions and the watches their deletions fired.
    pub fn expire_due(&mut self, now: Time) -> (Vec<SessionId>, Vec<(SessionId, WatchOn)>) {
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, x)| x.alive && now >= x.last_heard + x.timeout)
            .map(|(id, _)| *id)
            .collect();
        let mut fired = Vec::new();
        for s in &due {
            fired.extend(self.close(*s));
        }
        (due, fired)
    }

    /// Ends a session (expiry or close): its ephemerals go, its watches too.
    pub fn close(&mut self, s: SessionId) -> Vec<(SessionId, WatchOn)> {
        if let Some(x) = self.sessions.get_mut(&s) {
            x.alive = false;
        }
        self.watches.retain(|(_, w)| *w != s);
        let ephemerals: Vec<String> =
            self.tree.iter().filter(|(_, n)| n.owner == Some(s)).map(|(p, _)| p.clone()).collect();
        let mut fired = Vec::new();
        for p in &ephemerals {
            self.tree.remove(p);
            fired.extend(self.fire(p));
        }
        if !ephemerals.is_empty() {
            self.commit();
        }
        fired
    }

    fn commit(&mut self) {
        self.zxid += 1;
        self.history.push_back((self.zxid, Arc::new(self.tree.clone())));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// One-shot watches fired by a change of `path` (its node and its
    /// parent's children).
    fn fire(&mut self, path: &str) -> Vec<(SessionId, WatchOn)> {
        let targets = [WatchOn::Node(path.to_owned()), WatchOn::Children(parent(path).to_owned())];
        let fired: Vec<(WatchOn, SessionId)> =
            self.watches.iter().filter(|(w, _)| targets.contains(w)).cloned().collect();
        for f in &fired {
            self.watches.remove(f);
        }
        fired.into_iter().map(|(w, s)| (s, w)).collect()
    }

    /// Sets a one-shot watch.
    pub fn watch(&mut self, s: SessionId, on: WatchOn) {
        if self.alive(s) {
            self.watches.insert((on, s));
        }
    }

    /// The latest state.
    pub fn latest(&self) -> View {
        // Every change commits, so the newest history entry is the tree.
        let (zxid, tree) = self.history.back().expect("the history keeps the newest state");
        debug_assert_eq!(*zxid, self.zxid);
        View { zxid: *zxid, tree: Arc::clone(tree) }
    }

    /// A state at least as new as `min_zxid`, `lag` states behind the newest
    /// such (clamped): what a lagging server would answer.
    pub fn view(&self, min_zxid: i64, lag: usize) -> View {
        let eligible: Vec<&(i64, Arc<Tree>)> = self.history.iter().filter(|(z, _)| *z >= min_zxid).collect();
        match eligible.len() {
            0 => self.latest(),
            n => {
                let (zxid, tree) = eligible[n - 1 - lag.min(n - 1)];
                View { zxid: *zxid, tree: Arc::clone(tree) }
            }
        }
    }

    /// The newest zxid.
    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    /// Creates persistent nodes up to `path` (like `mkdir -p`).
    pub fn mkdir(&mut self, path: &str) -> Vec<(SessionId, WatchOn)> {
        let mut fired = Vec::new();
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            if !self.tree.contains_key(&at) {
                let node = Znode { data: Vec::new(), version: 0, czxid: self.zxid + 1, owner: None, ctime: 0 };
                self.tree.insert(at.clone(), node);
                fired.extend(self.fire(&at));
                self.commit();
            }
        }
        fired
    }

    /// Creates nodes atomically (all or none), ephemeral ones owned by `s`.
    pub fn create(
        &mut self,
        s: Option<SessionId>,
        nodes: &[(String, Vec<u8>)],
        ephemeral: bool,
    ) -> Result<(i64, Vec<(SessionId, WatchOn)>), ZkCode> {
        let writes: Vec<Write> = nodes
            .iter()
            .map(|(path, data)| Write::Create { path: path.clone(), data: data.clone(), ephemeral })
            .collect();
        let czxid = self.zxid + 1;
        self.apply(s, &writes, Time::ZERO).map(|(_, fired)| (czxid, fired)).map_err(|f| f.code)
    }

    /// Applies writes atomically — all or none, as a ZooKeeper `multi` —
    /// on behalf of session `s` (ephemerals are its) at virtual time `now`.
    pub fn apply(
        &mut self,
        s: Option<SessionId>,
        writes: &[Write],
        now: Time,
    ) -> Result<(Vec<Option<Stat>>, Fired), MultiFailure> {
        if s.is_some_and(|s| !self.alive(s)) {
            return Err(MultiFailure { index: None, code: ZkCode::SessionExpired });
        }
        let mut tree = self.tree.clone();
        let czxid = self.zxid + 1;
        let mut stats = Vec::with_capacity(writes.len());
        let fail = |index, code| Err(MultiFailure { index: Some(index), code });
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Create { path, data, ephemeral } => {
                    if tree.contains_key(path) {
                        return fail(i, ZkCode::NodeExists);
                    }
                    if !tree.contains_key(parent(path)) {
                        return fail(i, ZkCode::NoNode);
                    }
                    let owner = if *ephemeral { s } else { None };
                    let node = Znode { data: data.clone(), version: 0, czxid, owner, ctime: now.as_millis() as i64 };
                    stats.push(Some(node.stat()));
                    tree.insert(path.clone(), node);
                }
                Write::Delete { path, version } => {
                    let Some(node) = tree.get(path) else { return fail(i, ZkCode::NoNode) };
                    if version.is_some_and(|v| v != node.version) {
                        return fail(i, ZkCode::BadVersion);
                    }
                    if !children_of(&tree, path).is_empty() {
                        return fail(i, ZkCode::NotEmpty);
                    }
                    tree.remove(path);
                    stats.push(None);
                }
            }
        }
        self.tree = tree;
        let mut fired = Vec::new();
        for w in writes {
            let (Write::Create { path, .. } | Write::Delete { path, .. }) = w;
            fired.extend(self.fire(path));
        }
        self.commit();
        Ok((stats, fired))
    }

    /// Replaces a node's data.
    pub fn set(&mut self, path: &str, data: Vec<u8>) -> Result<Vec<(SessionId, WatchOn)>, ZkCode> {
        let node = self.tree.get_mut(path).ok_or(ZkCode::NoNode)?;
        node.data = data;
        node.version += 1;
        // A data change fires data watches only, never the parent's
        // children watch (as ZooKeeper's NodeDataChanged).
        let on = WatchOn::Node(path.to_owned());
        let fired: Vec<(SessionId, WatchOn)> =
            self.watches.iter().filter(|(w, _)| *w == on).map(|(w, s)| (*s, w.clone())).collect();
        self.watches.retain(|(w, _)| *w != on);
        self.commit();
        Ok(fired)
    }

    /// Deletes a node if its version matches (`None`: any).
    pub fn delete(&mut self, path: &str, version: Option<i32>) -> Result<Vec<(SessionId, WatchOn)>, ZkCode> {
        let write = Write::Delete { path: path.to_owned(), version };
        self.apply(None, &[write], Time::ZERO).map(|(_, fired)| fired).map_err(|f| f.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ephemerals_die_with_their_session_and_fire_watches() {
        let mut m = ZkModel::default();
        let (a, b) =
            (m.open_session(Duration::from_secs(1), Time::ZERO), m.open_session(Duration::from_secs(1), Time::ZERO));
        m.mkdir("/g/ids");
        m.create(Some(a), &[("/g/ids/a".into(), b"t".to_vec())], true).unwrap();
        m.watch(b, WatchOn::Children("/g/ids".into()));
        assert_eq!(m.create(Some(b), &[("/g/ids/a".into(), vec![])], true).unwrap_err(), ZkCode::NodeExists);
        m.touch(b, Duration::from_millis(900)).unwrap();
        let (expired, fired) = m.expire_due(Duration::from_millis(1000));
        assert_eq!(expired, [a]);
        assert_eq!(fired, [(b, WatchOn::Children("/g/ids".into()))]);
        assert!(m.latest().get("/g/ids/a").is_none());
        assert!(m.expire_due(Duration::from_millis(1001)).0.is_empty(), "one-shot, and b was heard from");
    }

    #[test]
    fn multi_create_is_all_or_nothing_and_reads_may_lag() {
        let mut m = ZkModel::default();
        let s = m.open_session(Duration::from_secs(1), Time::ZERO);
        m.mkdir("/o/x");
        m.mkdir("/o/y");
        m.create(Some(s), &[("/o/y/1".into(), vec![])], true).unwrap();
        let before = m.zxid();
        assert_eq!(
            m.create(Some(s), &[("/o/x/1".into(), vec![]), ("/o/y/1".into(), vec![])], true).unwrap_err(),
            ZkCode::NodeExists
        );
        assert!(m.latest().get("/o/x/1").is_none(), "nothing of a failed multi is applied");
        assert_eq!(m.zxid(), before);
        m.delete("/o/y/1", Some(0)).unwrap();
        assert!(m.view(0, 1).get("/o/y/1").is_some(), "a lagging read still sees it");
        assert!(m.view(m.zxid(), 5).get("/o/y/1").is_none(), "but never older than the reader's own writes");
    }
}
