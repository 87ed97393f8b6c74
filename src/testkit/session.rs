//! ZooKeeper client helpers for tests: connect with a deadline, force a
//! session to expire, and await a condition with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use zookeeper_client::{Client, SessionInfo};

use super::TestkitError;

/// Connects with the given session timeout, failing after `session_timeout`
/// plus a margin instead of retrying forever.
pub async fn connect(connect_string: &str, session_timeout: Duration) -> Result<Client, TestkitError> {
    connect_with(connect_string, &crate::coord::ZkAccess::default(), session_timeout).await
}

/// As [`connect`], authenticated or encrypted as `access` says.
pub async fn connect_with(
    connect_string: &str,
    access: &crate::coord::ZkAccess,
    session_timeout: Duration,
) -> Result<Client, TestkitError> {
    let attempt = access.connect(connect_string, session_timeout);
    let within = session_timeout + Duration::from_secs(5);
    match tokio::time::timeout(within, attempt).await {
        Ok(r) => r.map_err(TestkitError::zk("connect", connect_string)),
        Err(_) => {
            Err(TestkitError::Timeout { what: format!("a ZooKeeper session at {connect_string}"), waited: within })
        }
    }
}

/// Closes `session` from a second client attached to it: the server then
/// expires it and deletes its ephemerals. Only reliable when the session's
/// own client cannot reconnect meanwhile (it reconnects within milliseconds
/// and wins the session back), which is why tests call
/// [`ZkLink::expire`](super::ZkLink::expire) with the link cut. Repeats until
/// the server itself answers `SessionExpired`.
pub(crate) async fn expire_session(
    connect_string: &str,
    session: &SessionInfo,
    timeout: Duration,
) -> Result<(), TestkitError> {
    let within = timeout.max(Duration::from_secs(2)) * 5;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let attempt =
            Client::connector().with_session(session.clone()).with_session_timeout(timeout).connect(connect_string);
        match tokio::time::timeout(timeout.max(Duration::from_secs(2)), attempt).await {
            Ok(Err(zookeeper_client::Error::SessionExpired)) => return Ok(()),
            // Attached: dropping the twin closes the session. Wait for the
            // close to finish, or the next probe would steal the session
            // from the twin before its close goes out.
            Ok(Ok(twin)) => {
                let mut states = twin.state_watcher();
                drop(twin);
                let closed = async { while !states.changed().await.is_terminated() {} };
                let _ = tokio::time::timeout(timeout.max(Duration::from_secs(2)), closed).await;
            }
            Ok(Err(zookeeper_client::Error::Timeout | zookeeper_client::Error::ConnectionLoss)) | Err(_) => {}
            Ok(Err(e)) => return Err(TestkitError::zk("attach to session", connect_string)(e)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(TestkitError::Timeout { what: format!("session {:?} to expire", session.id()), waited: within })
}

/// Polls `check` every 20 ms until it yields `Some`, or fails after `within`
/// with an error naming `what`. For conditions that have no event to await
/// (e.g. "this znode is gone", seen from another session).
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout { what: what.to_owned(), waited: within });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
