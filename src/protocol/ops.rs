//! ZooKeeper operations as data, and the shape of a procedure built from
//! them. A [`Procedure`] says what to send next — a batch of requests that
//! go out together in one round trip — and what to make of the replies; an
//! executor (the driver's, against a real server; the simulator's, against
//! its model; `inspect`'s) carries the requests out. Nothing here waits,
//! sleeps or touches a socket.

use std::time::Duration;

use crate::zk_call::ZkCode;

/// A znode's metadata, as far as the protocol uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Stat {
    /// Creation zxid: tells two znodes of one path apart, and the earlier
    /// of two claims.
    pub czxid: i64,
    /// Data version.
    pub version: i32,
    /// The session holding it (ephemerals), or 0.
    pub ephemeral_owner: i64,
    /// Creation time, ms since the epoch (the server's clock).
    pub ctime: i64,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Write {
    /// Create a znode (world-readable and writable, as the legacy clients
    /// create theirs).
    Create {
        /// Where.
        path: String,
        /// Its payload.
        data: Vec<u8>,
        /// Whether it lives only as long as the session.
        ephemeral: bool,
    },
    /// Delete a znode, if at `version` (any when `None`).
    Delete {
        /// Which.
        path: String,
        /// The version it must have.
        version: Option<i32>,
    },
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// The children of a znode. With `watch`, a one-shot child watch.
    Children {
        /// The znode.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// A znode's payload and stat. With `watch`, a one-shot watch that fires
    /// on its creation, change or deletion (set even when it is absent).
    Data {
        /// The znode.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// A registration's payload and stat, as [`Request::Data`] without a
    /// watch: a znode that, once written, only changes by being deleted
    /// (member and owner registrations). A member's executor may answer
    /// from a cache that a watch of its own keeps exact (an inspecting one
    /// reads fresh); the answer must be what a read at this point would
    /// return.
    Registration {
        /// The znode.
        path: String,
    },
    /// Create the persistent znodes up to `path`, as needed.
    Mkdir {
        /// The deepest one.
        path: String,
    },
    /// Writes applied all or none.
    Multi(Vec<Write>),
}

/// A failed transaction: which write failed (if the server says), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiFailure {
    /// The failing write's index; `None` when the request itself failed.
    pub index: Option<usize>,
    /// Why.
    pub code: ZkCode,
}

/// The answer to one [`Request`], in the same position of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// To [`Request::Children`]; `NoNode` when the znode is absent.
    Children(Result<Vec<String>, ZkCode>),
    /// To [`Request::Data`] and [`Request::Registration`]; `Ok(None)` when
    /// the znode is absent.
    Data(Result<Option<(Vec<u8>, Stat)>, ZkCode>),
    /// To [`Request::Mkdir`].
    Mkdir(Result<(), ZkCode>),
    /// To [`Request::Multi`]: per write, the stat of a created znode when
    /// the server returned one.
    Multi(Result<Vec<Option<Stat>>, MultiFailure>),
}

impl Reply {
    /// The children, or the failure; an absent znode has none.
    pub fn children(self) -> Result<Vec<String>, ZkCode> {
        match self {
            Reply::Children(Ok(c)) => Ok(c),
            Reply::Children(Err(ZkCode::NoNode)) => Ok(Vec::new()),
            Reply::Children(Err(e)) => Err(e),
            other => Err(unexpected(&other)),
        }
    }

    /// The payload and stat, or the failure.
    pub fn data(self) -> Result<Option<(Vec<u8>, Stat)>, ZkCode> {
        match self {
            Reply::Data(r) => r,
            other => Err(unexpected(&other)),
        }
    }

    /// The mkdir's outcome.
    pub fn mkdir(self) -> Result<(), ZkCode> {
        match self {
            Reply::Mkdir(r) => r,
            other => Err(unexpected(&other)),
        }
    }

    /// The transaction's outcome.
    pub fn multi(self) -> Result<Vec<Option<Stat>>, MultiFailure> {
        match self {
            Reply::Multi(r) => r,
            other => Err(MultiFailure { index: None, code: unexpected(&other) }),
        }
    }
}

fn unexpected(reply: &Reply) -> ZkCode {
    ZkCode::Other(format!("a reply of the wrong kind: {reply:?}"))
}

/// What a procedure wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Send these together; resume with their replies, in order.
    Send(Vec<Request>),
    /// Wait until the watch left by the last [`Request::Data`] fires, then
    /// resume with no replies.
    AwaitWatch,
    /// Wait this long (a retry backoff), then resume with no replies.
    Sleep(Duration),
    /// Finished.
    Done(T),
}

/// A protocol operation: a small state machine over round trips.
pub trait Procedure {
    /// What it ends with.
    type Output;

    /// Called first with no replies, then with the replies to each
    /// [`Step::Send`] (nothing after [`Step::AwaitWatch`] or
    /// [`Step::Sleep`]).
    fn resume(&mut self, replies: Vec<Reply>) -> Step<Self::Output>;
}
