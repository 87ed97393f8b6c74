//! A cuttable network link between clients and ZooKeeper: one loopback TCP
//! proxy per server. Cutting it is a network partition as the client sees
//! it — `Disconnected`, and `Expired` if it lasts past the session timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::SessionInfo;

use super::zookeeper::ZooKeeper;
use super::TestkitError;

struct Proxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

/// Proxies in front of every node of a [`ZooKeeper`]; clients that should be
/// partitionable connect through [`ZkLink::connect_string`].
pub struct ZkLink {
    proxies: Vec<Proxy>,
    /// `true` while cut. Connections watch it and drop when it flips.
    cut: Arc<watch::Sender<bool>>,
    direct: String,
}

async fn pipe(client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client, mut server) = (client, server);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}

impl ZkLink {
    /// Starts one proxy per node of `zk`.
    pub async fn new(zk: &ZooKeeper) -> Result<Self, TestkitError> {
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let mut proxies = Vec::new();
        for i in 0..zk.size() {
            let upstream: SocketAddr = ([127, 0, 0, 1], zk.client_port(i)).into();
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| TestkitError::Io { what: "binding a proxy port".into(), source })?;
            let addr =
                listener.local_addr().map_err(|source| TestkitError::Io { what: "proxy address".into(), source })?;
            let cut = Arc::clone(&cut);
            let accept = tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    // While cut, a new connection is accepted and closed at
                    // once, as a firewall answering with a reset would.
                    if *cut.borrow() {
                        continue;
                    }
                    tokio::spawn(pipe(client, upstream, cut.subscribe()));
                }
            });
            proxies.push(Proxy { addr, accept });
        }
        Ok(ZkLink { proxies, cut, direct: zk.connect_string() })
    }

    /// The connect string through the proxies.
    pub fn connect_string(&self) -> String {
        self.proxies.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Drops every connection through the link and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Expires the session of a client connected through this link: cuts the
    /// link so the client cannot win its session back, closes the session
    /// from a second client attached directly, and restores the link. The
    /// client learns `Expired` when it reconnects.
    pub async fn expire(&self, session: &SessionInfo, timeout: std::time::Duration) -> Result<(), TestkitError> {
        self.cut();
        let result = super::session::expire_session(&self.direct, session, timeout).await;
        self.restore();
        result
    }
}

impl Drop for ZkLink {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        for p in &self.proxies {
            p.accept.abort();
        }
    }
}
