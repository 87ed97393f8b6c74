//! A cuttable network link between clients and ZooKeeper: one loopback TCP
//! proxy per server. Cutting it is a network partition as the client sees
//! it — `Disconnected`, and `Expired` if it lasts past the session timeout.
//! Two kinds: a *cut* resets connections (a firewall rejecting), a
//! *blackhole* silently drops every byte (packets lost in a partition): the
//! client then learns nothing until its own timeouts fire.

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
    /// Connections watch it and drop (or go silent) when it changes.
    state: Arc<watch::Sender<State>>,
    direct: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Cut,
    Blackhole,
}

async fn pipe(client: TcpStream, upstream: SocketAddr, mut state: watch::Receiver<State>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client, mut server) = (client, server);
    let broken = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        s = state.wait_for(|s| *s != State::Open) => s.map(|s| *s),
    };
    if matches!(broken, Ok(State::Blackhole)) {
        // Nothing passes any more, and nobody is told: hold both ends open
        // until the partition ends, then drop them (by then the client has
        // given up on this connection).
        let _ = state.wait_for(|s| *s != State::Blackhole).await;
    }
}

impl ZkLink {
    /// Starts one proxy per node of `zk`.
    pub async fn new(zk: &ZooKeeper) -> Result<Self, TestkitError> {
        let (state, _) = watch::channel(State::Open);
        let state = Arc::new(state);
        let mut proxies = Vec::new();
        for i in 0..zk.size() {
            let upstream: SocketAddr = ([127, 0, 0, 1], zk.link_port(i)).into();
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| TestkitError::Io { what: "binding a proxy port".into(), source })?;
            let addr =
                listener.local_addr().map_err(|source| TestkitError::Io { what: "proxy address".into(), source })?;
            let state = Arc::clone(&state);
            let accept = tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let now = *state.borrow();
                    match now {
                        // Accepted and closed at once, as a firewall
                        // answering with a reset would.
                        State::Cut => {}
                        // Accepted and never answered.
                        State::Blackhole => {
                            let mut state = state.subscribe();
                            tokio::spawn(async move {
                                let _ = state.wait_for(|s| *s != State::Blackhole).await;
                                drop(client);
                            });
                        }
                        State::Open => {
                            tokio::spawn(pipe(client, upstream, state.subscribe()));
                        }
                    }
                }
            });
            proxies.push(Proxy { addr, accept });
        }
        Ok(ZkLink { proxies, state, direct: zk.connect_string() })
    }

    /// The connect string through the proxies.
    pub fn connect_string(&self) -> String {
        self.proxies.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Drops every connection through the link and refuses new ones.
    pub fn cut(&self) {
        self.state.send_replace(State::Cut);
    }

    /// Drops every byte, silently: connections stay open and new ones are
    /// accepted, but nothing passes until [`restore`](Self::restore).
    pub fn blackhole(&self) {
        self.state.send_replace(State::Blackhole);
    }

    /// Lets connections through again (connections held by a blackhole
    /// are dropped: their client has timed them out).
    pub fn restore(&self) {
        self.state.send_replace(State::Open);
    }

    /// Whether the link is cut or blackholed.
    pub fn is_cut(&self) -> bool {
        *self.state.borrow() != State::Open
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
        self.state.send_replace(State::Cut);
        for p in &self.proxies {
            p.accept.abort();
        }
    }
}
