//! A private, real ZooKeeper server (or 3-node ensemble) from Debian's
//! `zookeeper` package, on free loopback ports with a temporary data dir.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{self, Supervised};
use super::secure::{self, ServerSecurity, TestCerts};
use super::TestkitError;

const JAR: &str = "/usr/share/java/zookeeper.jar";
const LOG_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const START_DEADLINE: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

/// How a node answered the `srvr` four-letter command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A lone server.
    Standalone,
    /// The ensemble's leader.
    Leader,
    /// A follower.
    Follower,
}

#[derive(Debug)]
struct Node {
    id: usize,
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    process: Option<Supervised>,
}

/// A running ZooKeeper: one standalone server or an ensemble. Every process
/// is killed when this is dropped.
#[derive(Debug)]
pub struct ZooKeeper {
    nodes: Vec<Node>,
    standalone: bool,
    /// JVM flags of a secured server (JAAS file, TLS stores).
    jvm_flags: Vec<String>,
    certs: Option<TestCerts>,
    secure_port: Option<u16>,
    _dir: tempfile::TempDir,
}

fn free_ports(n: usize) -> Result<Vec<u16>, TestkitError> {
    // Hold every listener until all are chosen, so no port is picked twice.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TestkitError::Io { what: "choosing free ports".into(), source })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|source| TestkitError::Io { what: "choosing free ports".into(), source })
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), TestkitError> {
    std::fs::write(path, text)
        .map_err(|source| TestkitError::Io { what: format!("writing {}", path.display()), source })
}

/// Asks `127.0.0.1:port` for `srvr`; `None` while it does not serve.
pub async fn server_mode(port: u16) -> Option<Mode> {
    let ask = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"srvr").await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        let mode = out.lines().find_map(|l| l.strip_prefix("Mode: "))?;
        match mode.trim() {
            "standalone" => Some(Mode::Standalone),
            "leader" => Some(Mode::Leader),
            "follower" => Some(Mode::Follower),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl ZooKeeper {
    /// Starts one standalone server and waits until it serves.
    pub async fn standalone() -> Result<Self, TestkitError> {
        Self::start(1).await
    }

    /// Starts an ensemble of `size` nodes (1 = standalone) and waits until a
    /// quorum serves. Retries with fresh ports if another process grabbed one.
    pub async fn start(size: usize) -> Result<Self, TestkitError> {
        Self::start_secured(size, &ServerSecurity::default()).await
    }

    /// Starts one standalone server secured as `security` says.
    pub async fn secured(security: ServerSecurity) -> Result<Self, TestkitError> {
        Self::start_secured(1, &security).await
    }

    /// Starts `size` nodes secured as `security` says (TLS: standalone only).
    pub async fn start_secured(size: usize, security: &ServerSecurity) -> Result<Self, TestkitError> {
        if !Path::new(JAR).exists() {
            return Err(TestkitError::ZooKeeperNotInstalled { jar: JAR.into() });
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(size, security).await {
                Ok(zk) => return Ok(zk),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn try_start(size: usize, security: &ServerSecurity) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("zkbalance-zk-")
            .tempdir()
            .map_err(|source| TestkitError::Io { what: "creating a temp dir".into(), source })?;
        let ports = free_ports(size * 3 + 1)?;
        let standalone = size == 1;
        let certs = if security.tls { Some(TestCerts::generate(dir.path())?) } else { None };
        let secure_port = security.tls.then_some(ports[size * 3]);
        let (jvm_flags, secure_cfg) = secure::server_settings(security, dir.path(), certs.as_ref(), secure_port)?;
        let mut servers = String::new();
        for i in 0..size {
            let _ = writeln!(servers, "server.{}=127.0.0.1:{}:{}", i + 1, ports[3 * i + 1], ports[3 * i + 2]);
        }
        let mut nodes = Vec::with_capacity(size);
        for i in 0..size {
            let node_dir = dir.path().join(format!("node{}", i + 1));
            let data = node_dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(|source| TestkitError::Io { what: format!("creating {}", data.display()), source })?;
            let mut cfg = format!(
                "tickTime=200\nminSessionTimeout=400\nmaxSessionTimeout=60000\ndataDir={}\n\
                 clientPort={}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=*\nforceSync=no\npreAllocSize=1024\n",
                data.display(),
                ports[3 * i]
            );
            cfg.push_str(&secure_cfg);
            if !standalone {
                cfg.push_str("initLimit=50\nsyncLimit=25\nstandaloneEnabled=false\n");
                cfg.push_str(&servers);
                write_file(&data.join("myid"), &format!("{}\n", i + 1))?;
            }
            let config = node_dir.join("zoo.cfg");
            write_file(&config, &cfg)?;
            nodes.push(Node {
                id: i + 1,
                client_port: ports[3 * i],
                config,
                log: node_dir.join("server.log"),
                process: None,
            });
        }
        let mut zk = ZooKeeper { nodes, standalone, jvm_flags, certs, secure_port, _dir: dir };
        for i in 0..size {
            zk.spawn_node(i)?;
        }
        zk.wait_serving(START_DEADLINE).await?;
        Ok(zk)
    }

    fn spawn_node(&mut self, index: usize) -> Result<(), TestkitError> {
        let standalone = self.standalone;
        let mut class_path = format!("{JAR}:{LOG_JAR}");
        if self.secure_port.is_some() {
            for jar in secure::NETTY_JARS {
                class_path.push(':');
                class_path.push_str(jar);
            }
        }
        let jvm_flags = self.jvm_flags.clone();
        let node = &mut self.nodes[index];
        let log = std::fs::File::create(&node.log)
            .map_err(|source| TestkitError::Io { what: format!("creating {}", node.log.display()), source })?;
        let log2 =
            log.try_clone().map_err(|source| TestkitError::Io { what: "cloning a log handle".into(), source })?;
        let main = if standalone {
            "org.apache.zookeeper.server.ZooKeeperServerMain"
        } else {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        };
        let mut cmd = Command::new("java");
        cmd.args(["-Xms64m", "-Xmx64m", "-Xmn32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"])
            .arg("-Djava.net.preferIPv4Stack=true")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg(format!("-D{}", process::owner_marker()))
            .args(jvm_flags)
            .arg("-cp")
            .arg(class_path)
            .arg(main)
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = process::spawn(cmd).map_err(|source| TestkitError::Io {
            what: "starting java for ZooKeeper (is a JRE installed?)".into(),
            source,
        })?;
        node.process = Some(Supervised::new(child, format!("zookeeper node {}", node.id)));
        Ok(())
    }

    /// Waits until every running node serves (standalone, or leader/follower).
    pub async fn wait_serving(&mut self, within: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + within;
        loop {
            let mut all = true;
            for i in 0..self.nodes.len() {
                let Some(p) = self.nodes[i].process.as_mut() else { continue };
                if p.has_exited() {
                    return Err(self.not_ready(i, "exited during start"));
                }
                if server_mode(self.nodes[i].client_port).await.is_none() {
                    all = false;
                }
            }
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let slow = (0..self.nodes.len()).find(|&i| self.nodes[i].process.is_some()).unwrap_or(0);
                return Err(self.not_ready(slow, &format!("not serving within {within:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn not_ready(&self, index: usize, why: &str) -> TestkitError {
        let node = &self.nodes[index];
        TestkitError::NotReady {
            what: format!("ZooKeeper node {} on 127.0.0.1:{}", node.id, node.client_port),
            why: why.to_owned(),
            log_tail: log_tail(&node.log),
        }
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...` for every node.
    pub fn connect_string(&self) -> String {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The port a [`ZkLink`](super::ZkLink) to node `index` forwards to:
    /// the TLS port when the server has one (members then speak TLS
    /// through the link), else the plain client port.
    pub fn link_port(&self, index: usize) -> u16 {
        match self.secure_port {
            Some(port) if index == 0 => port,
            _ => self.nodes[index].client_port,
        }
    }

    /// The TLS client port's connect string, when the server has one.
    pub fn tls_connect_string(&self) -> Option<String> {
        self.secure_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// The certificates of a TLS server.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    /// The connect string with a chroot suffix.
    pub fn connect_string_with_chroot(&self, chroot: &str) -> String {
        format!("{}{chroot}", self.connect_string())
    }

    /// How many nodes the ensemble has.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The client port of node `index` (0-based).
    pub fn client_port(&self, index: usize) -> u16 {
        self.nodes[index].client_port
    }

    /// The JVM pid of node `index`, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes[index].process.as_ref().and_then(Supervised::pid)
    }

    /// Each running node's mode, `None` where a node is down or not serving.
    pub async fn modes(&self) -> Vec<Option<Mode>> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            out.push(if n.process.is_some() { server_mode(n.client_port).await } else { None });
        }
        out
    }

    /// The index of the current leader, if one serves.
    pub async fn leader(&self) -> Option<usize> {
        self.modes().await.iter().position(|m| *m == Some(Mode::Leader))
    }

    /// SIGKILLs node `index` (a crash, not a shutdown).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut p) = self.nodes[index].process.take() {
            p.kill();
        }
    }

    /// Starts node `index` again with its old config and data, and waits
    /// until every running node serves.
    pub async fn restart(&mut self, index: usize) -> Result<(), TestkitError> {
        self.kill(index);
        self.spawn_node(index)?;
        self.wait_serving(START_DEADLINE).await
    }

    /// Kills every node now (also done on drop).
    pub fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.shutdown();
    }
}
