//! One ZooKeeper request that failed: what, where, why. Shared by every
//! error enum that wraps ZooKeeper failures.

use thiserror::Error;

/// A failed ZooKeeper request.
#[derive(Debug, Error)]
#[error("ZooKeeper {op} {path}: {source}")]
pub struct ZkCallError {
    /// What was being done ("read", "create", ...).
    pub op: &'static str,
    /// The znode (or connect string).
    pub path: String,
    /// The cause.
    #[source]
    pub source: zookeeper_client::Error,
}

/// Maps a `zookeeper_client::Error` of request `op` on `path`.
pub fn zk_call(op: &'static str, path: impl Into<String>) -> impl FnOnce(zookeeper_client::Error) -> ZkCallError {
    let path = path.into();
    move |source| ZkCallError { op, path, source }
}
