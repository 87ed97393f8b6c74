//! The edge to `zookeeper-client`: its errors as [`ZkCode`]s, and the
//! executor that carries out [`protocol`](crate::protocol) procedures
//! against a real server — each batch of requests sent together
//! (pipelined on the one connection), the watches they ask for set.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::join_all;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use zookeeper_client::{Acls, Client, CreateMode, MultiWriteError, MultiWriteResult, OneshotWatcher};

use super::access::AclPolicy;
use super::cache::RegistrationCache;
use crate::protocol::ops::{MultiFailure, Procedure, Reply, Request, Stat, Step, Write};
use crate::zk_call::{ZkCallError, ZkCode};

/// The kind of a client error.
pub(crate) fn code(e: &zookeeper_client::Error) -> ZkCode {
    use zookeeper_client::Error as E;
    match e {
        E::NoNode => ZkCode::NoNode,
        E::NodeExists => ZkCode::NodeExists,
        E::NotEmpty => ZkCode::NotEmpty,
        E::BadVersion => ZkCode::BadVersion,
        E::NoAuth => ZkCode::NoAuth,
        E::AuthFailed => ZkCode::AuthFailed,
        E::SessionExpired => ZkCode::SessionExpired,
        E::SessionMoved => ZkCode::SessionMoved,
        E::ConnectionLoss => ZkCode::ConnectionLoss,
        E::Timeout => ZkCode::Timeout,
        E::NoHosts => ZkCode::NoHosts,
        E::ClientClosed => ZkCode::Closed,
        E::Throttled => ZkCode::Throttled,
        E::NotReadOnly => ZkCode::NotReadOnly,
        other => ZkCode::Other(other.to_string()),
    }
}

/// Maps a client error of request `op` on `path`.
pub(crate) fn call(op: &'static str, path: impl Into<String>) -> impl FnOnce(zookeeper_client::Error) -> ZkCallError {
    let path = path.into();
    move |e| ZkCallError::new(op, path, code(&e))
}

fn stat(s: &zookeeper_client::Stat) -> Stat {
    Stat { czxid: s.czxid, version: s.version, ephemeral_owner: s.ephemeral_owner, ctime: s.ctime }
}

/// One watch per (kind, path) at a time: a read that finds a watch already
/// set reads without setting another, so reconciles do not pile them up.
/// With them, the session's cache of registrations (kept by watches too).
#[derive(Clone, Default)]
pub(crate) struct Watches {
    set: Arc<Mutex<HashSet<String>>>,
    cache: Arc<RegistrationCache>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches").field("set", &self.set.lock().len()).finish_non_exhaustive()
    }
}

impl Watches {
    fn claim(&self, key: &str) -> bool {
        self.set.lock().insert(key.to_owned())
    }

    fn forget(&self, key: &str) {
        self.set.lock().remove(key);
    }

    /// How many registrations are cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// After an expiry every watch is gone with the session.
    pub fn clear(&self) {
        self.set.lock().clear();
        self.cache.clear();
    }

    fn arm(&self, key: String, watcher: OneshotWatcher, changed: &mpsc::UnboundedSender<()>) {
        let (set, changed) = (Arc::clone(&self.set), changed.clone());
        tokio::spawn(async move {
            watcher.changed().await;
            set.lock().remove(&key);
            let _ = changed.send(());
        });
    }
}

/// Where the watches a procedure asks for go.
#[derive(Clone, Copy)]
pub(crate) enum Watching<'a> {
    /// A group read: a firing marks the view stale.
    Stale(&'a Watches, &'a mpsc::UnboundedSender<()>),
    /// An owner wait: the procedure awaits the watch itself.
    Awaited,
    /// None at all (inspection).
    Off,
}

/// Runs a procedure to its end against `zk`; what it creates is open to
/// all, as the legacy clients create it.
pub(crate) async fn run<P: Procedure>(zk: &Client, procedure: P, watching: Watching<'_>) -> P::Output {
    run_with_acl(zk, procedure, watching, &AclPolicy::Open.entries()).await
}

/// Runs a procedure to its end against `zk`; the ephemerals it creates (a
/// member's registration and owner znodes) carry `acl`, directories and
/// offsets stay open (see [`AclPolicy`](super::AclPolicy) for why).
pub(crate) async fn run_with_acl<P: Procedure>(
    zk: &Client,
    mut procedure: P,
    watching: Watching<'_>,
    acl: &[zookeeper_client::Acl],
) -> P::Output {
    let mut replies = Vec::new();
    let mut awaited: Option<OneshotWatcher> = None;
    loop {
        match procedure.resume(std::mem::take(&mut replies)) {
            Step::Done(out) => return out,
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::AwaitWatch => {
                if let Some(w) = awaited.take() {
                    w.changed().await;
                }
            }
            Step::Send(batch) => {
                for (reply, watcher) in join_all(batch.into_iter().map(|r| one(zk, r, watching, acl))).await {
                    if watcher.is_some() {
                        awaited = watcher;
                    }
                    replies.push(reply);
                }
            }
        }
    }
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// A znode's payload and stat; `None` when absent.
async fn get(zk: &Client, path: &str) -> Result<Option<(Vec<u8>, Stat)>, zookeeper_client::Error> {
    match zk.get_data(path).await {
        Ok((data, s)) => Ok(Some((data, stat(&s)))),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn one(
    zk: &Client,
    request: Request,
    watching: Watching<'_>,
    acl: &[zookeeper_client::Acl],
) -> (Reply, Option<OneshotWatcher>) {
    let err = |e: zookeeper_client::Error| code(&e);
    match request {
        Request::Children { path, watch } => {
            let key = format!("children:{path}");
            if let (true, Watching::Stale(watches, changed)) = (watch, watching) {
                if watches.claim(&key) {
                    return match zk.list_and_watch_children(&path).await {
                        Ok((children, watcher)) => {
                            watches.arm(key, watcher, changed);
                            (Reply::Children(Ok(children)), None)
                        }
                        Err(e) => {
                            watches.forget(&key);
                            (Reply::Children(Err(err(e))), None)
                        }
                    };
                }
            }
            (Reply::Children(zk.list_children(&path).await.map_err(err)), None)
        }
        Request::Data { path, watch } => {
            let plain = || async { get(zk, &path).await.map_err(err) };
            match (watch, watching) {
                (true, Watching::Stale(watches, changed)) => {
                    let key = format!("data:{path}");
                    if !watches.claim(&key) {
                        return (Reply::Data(plain().await), None);
                    }
                    // An existence watch: it fires on creation, change and
                    // deletion, and is set even while the znode is absent.
                    match zk.check_and_watch_stat(&path).await {
                        Ok((found, watcher)) => {
                            watches.arm(key, watcher, changed);
                            let reply = if found.is_some() { plain().await } else { Ok(None) };
                            (Reply::Data(reply), None)
                        }
                        Err(e) => {
                            watches.forget(&key);
                            (Reply::Data(Err(err(e))), None)
                        }
                    }
                }
                (true, Watching::Awaited) => match zk.get_and_watch_data(&path).await {
                    Ok((data, s, watcher)) => (Reply::Data(Ok(Some((data, stat(&s))))), Some(watcher)),
                    Err(zookeeper_client::Error::NoNode) => (Reply::Data(Ok(None)), None),
                    Err(e) => (Reply::Data(Err(err(e))), None),
                },
                _ => (Reply::Data(plain().await), None),
            }
        }
        Request::Registration { path } => {
            // Only a member's reads cache: inspection and owner waits read fresh.
            let Watching::Stale(watches, _) = watching else {
                return (Reply::Data(get(zk, &path).await.map_err(err)), None);
            };
            if let Some(hit) = watches.cache.get(&path) {
                return (Reply::Data(Ok(Some(hit))), None);
            }
            // A data watch, not an existence one: a registration that is
            // absent is not waited for here (the listing's watch covers it).
            match zk.get_and_watch_data(&path).await {
                Ok((data, s, watcher)) => {
                    watches.cache.insert(path, data.clone(), stat(&s), watcher);
                    (Reply::Data(Ok(Some((data, stat(&s))))), None)
                }
                Err(zookeeper_client::Error::NoNode) => (Reply::Data(Ok(None)), None),
                Err(e) => (Reply::Data(Err(err(e))), None),
            }
        }
        Request::Mkdir { path } => (Reply::Mkdir(mkdir(zk, &path, acl).await.map_err(err)), None),
        Request::Multi(writes) => (Reply::Multi(multi(zk, writes, acl).await), None),
    }
}

/// Makes `path` and its missing ancestors. The ancestors are open to all
/// (they are shared: `/consumers`, the group, `owners`); `path` itself (the
/// `ids` or an `owners/<topic>` directory) carries `acl`, so that under a
/// restrictive policy only admitted identities create and delete there.
async fn mkdir(zk: &Client, path: &str, acl: &[zookeeper_client::Acl]) -> Result<(), zookeeper_client::Error> {
    if acl == AclPolicy::Open.entries().as_slice() {
        return zk.mkdir(path, &persistent()).await;
    }
    if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
        zk.mkdir(parent, &persistent()).await?;
    }
    match zk.create(path, &[], &CreateMode::Persistent.with_acls(Acls::new(acl))).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn multi(
    zk: &Client,
    writes: Vec<Write>,
    acl: &[zookeeper_client::Acl],
) -> Result<Vec<Option<Stat>>, MultiFailure> {
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::new(acl));
    let persistent = persistent();
    let mut w = zk.new_multi_writer();
    for (i, write) in writes.iter().enumerate() {
        let added = match write {
            Write::Create { path, data, ephemeral: true } => w.add_create(path, data, &ephemeral),
            Write::Create { path, data, ephemeral: false } => w.add_create(path, data, &persistent),
            Write::Delete { path, version } => w.add_delete(path, *version),
        };
        if let Err(e) = added {
            return Err(MultiFailure { index: Some(i), code: code(&e) });
        }
    }
    match w.commit().await {
        Ok(results) => Ok(results
            .into_iter()
            .map(|r| match r {
                MultiWriteResult::Create { stat: s, .. } if !s.is_invalid() => Some(stat(&s)),
                _ => None,
            })
            .collect()),
        Err(MultiWriteError::OperationFailed { index, source }) => {
            Err(MultiFailure { index: Some(index), code: code(&source) })
        }
        Err(MultiWriteError::RequestFailed { source }) => Err(MultiFailure { index: None, code: code(&source) }),
    }
}
