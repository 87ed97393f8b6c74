//! ZooKeeper call failures as the crate sees them: what was being done,
//! on which znode, and a typed code. No client-library type appears here, so
//! the state machine, the simulator and the public error enums all carry the
//! same one ([`ZkCallError`]); the I/O code converts the client's errors at
//! its edge (`coord::zk`).

use std::fmt;

use thiserror::Error;

/// What went wrong with a ZooKeeper request, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ZkCode {
    /// The znode (or a parent) does not exist.
    NoNode,
    /// The znode exists already.
    NodeExists,
    /// The znode has children.
    NotEmpty,
    /// A version condition failed.
    BadVersion,
    /// The session lacks permission (ACL).
    NoAuth,
    /// Authentication was refused.
    AuthFailed,
    /// The session expired: its ephemerals are gone.
    SessionExpired,
    /// The session moved to another connection.
    SessionMoved,
    /// The connection dropped before an answer came; the request may or
    /// may not have been applied.
    ConnectionLoss,
    /// No answer in time.
    Timeout,
    /// No server could be reached.
    NoHosts,
    /// The client was closed.
    Closed,
    /// The server shed load.
    Throttled,
    /// A write reached a read-only server.
    NotReadOnly,
    /// Anything else, as the client described it.
    Other(String),
}

impl ZkCode {
    /// The session is over: nothing sent in it can succeed any more.
    pub fn ends_session(&self) -> bool {
        matches!(self, ZkCode::SessionExpired | ZkCode::SessionMoved | ZkCode::Closed | ZkCode::AuthFailed)
    }
}

impl fmt::Display for ZkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ZkCode::NoNode => "no such znode",
            ZkCode::NodeExists => "the znode exists",
            ZkCode::NotEmpty => "the znode has children",
            ZkCode::BadVersion => "version mismatch",
            ZkCode::NoAuth => "not authorized",
            ZkCode::AuthFailed => "authentication failed",
            ZkCode::SessionExpired => "session expired",
            ZkCode::SessionMoved => "session moved",
            ZkCode::ConnectionLoss => "connection lost",
            ZkCode::Timeout => "timed out",
            ZkCode::NoHosts => "no server reachable",
            ZkCode::Closed => "client closed",
            ZkCode::Throttled => "throttled by the server",
            ZkCode::NotReadOnly => "write to a read-only server",
            ZkCode::Other(text) => text,
        };
        f.write_str(text)
    }
}

/// A failed ZooKeeper request: what, where, why. The one error type for
/// ZooKeeper call failures throughout the crate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("ZooKeeper {op} {path}: {code}")]
pub struct ZkCallError {
    /// What was being done ("read", "create", "claim", ...).
    pub op: &'static str,
    /// The znode (or connect string).
    pub path: String,
    /// Why it failed.
    pub code: ZkCode,
}

impl ZkCallError {
    /// A failure of `op` on `path`.
    pub fn new(op: &'static str, path: impl Into<String>, code: ZkCode) -> Self {
        ZkCallError { op, path: path.into(), code }
    }
}
