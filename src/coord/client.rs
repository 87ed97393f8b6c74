//! A ZooKeeper session behind a type of our own, for code that reads the
//! cluster and groups from outside ([`cluster`](crate::cluster),
//! [`inspect`](crate::inspect)): the ZooKeeper client crate is pre-1.0, and
//! its types stay out of our public signatures.

use std::time::Duration;

use zookeeper_client::Client;

use super::{CoordError, ZkAccess};

/// A connected ZooKeeper session. Clones share the session, which closes
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct ZkClient(Client);

impl ZkClient {
    /// Connects within `timeout` (also the session timeout asked for),
    /// authenticated or encrypted as `access` says, and checks that the
    /// chroot, if any, exists.
    ///
    /// # Errors
    /// [`CoordError::Unreachable`] when no server answers in time,
    /// [`CoordError::AuthFailed`] when the credentials are refused or the
    /// TLS handshake fails, [`CoordError::BadChroot`] when the chroot does
    /// not exist, [`CoordError::Config`] for a malformed connect string.
    pub async fn connect(connect: &str, access: &ZkAccess, timeout: Duration) -> Result<Self, CoordError> {
        Ok(ZkClient(super::connect_checked(connect, access, timeout, timeout).await?))
    }

    /// The session's id, as the server's logs and four-letter commands
    /// show it.
    pub fn session_id(&self) -> i64 {
        self.0.session().id().0
    }

    pub(crate) fn raw(&self) -> &Client {
        &self.0
    }
}

/// Test support: wraps a session the test kit opened.
#[cfg(feature = "testkit")]
impl From<Client> for ZkClient {
    fn from(client: Client) -> Self {
        ZkClient(client)
    }
}
