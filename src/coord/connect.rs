//! Reaching ZooKeeper: the connect string checked before anything is
//! tried, then attempts until the bound, with errors that say what
//! happened and how long it took.

use std::time::{Duration, Instant};

use zookeeper_client::Client;

use super::{zk, CoordError, ZkAccess};
use crate::balance::ConfigError;

/// Refuses a connect string that is not `host[:port][,host[:port]...][/chroot]`
/// (an IPv6 host in brackets), naming what is wrong: a typo is a bad
/// setting, not an unreachable server.
pub(crate) fn check(connect: &str) -> Result<(), CoordError> {
    let bad = |why: String| {
        CoordError::Config(ConfigError {
            setting: "zookeeper",
            reason: format!("{connect:?} is not HOST:PORT[,HOST:PORT...][/chroot]: {why}"),
        })
    };
    let (hosts, chroot) = match connect.find('/') {
        Some(slash) => connect.split_at(slash),
        None => (connect, ""),
    };
    if chroot.len() > 1 && (chroot.ends_with('/') || chroot.contains("//")) {
        return Err(bad(format!("bad chroot {chroot:?}")));
    }
    for entry in hosts.split(',') {
        let entry = entry.trim();
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((v6, port)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => (v6, port.strip_prefix(':')),
                _ => return Err(bad(format!("{entry:?}: a bracketed host must be an IPv6 address"))),
            },
            None => match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            },
        };
        let host_ok = !host.is_empty()
            && (entry.starts_with('[') || host.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
        if !host_ok {
            return Err(bad(format!("{entry:?}: no host name or address (IPv6 goes in brackets)")));
        }
        if let Some(port) = port {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(format!("{entry:?}: port {port:?} is not 1-65535")));
            }
        }
    }
    Ok(())
}

/// Connects with a bound on the wait.
pub(crate) async fn connect(
    connect: &str,
    access: &ZkAccess,
    session_timeout: Duration,
    within: Duration,
) -> Result<Client, CoordError> {
    use zookeeper_client::Error as E;
    check(connect)?;
    // The client gives up after about one session timeout, which may be
    // shorter than the wait asked for: try again until the bound, and say
    // how long it really was.
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, access.connect(connect, session_timeout)).await {
            Ok(Ok(zk)) => return Ok(zk),
            Ok(Err(E::Timeout | E::NoHosts | E::ConnectionLoss))
                if deadline.saturating_duration_since(tokio::time::Instant::now()) > RECONNECT_PAUSE =>
            {
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
            Ok(Err(E::Timeout | E::NoHosts | E::ConnectionLoss)) | Err(_) => {
                let waited = started.elapsed();
                return Err(CoordError::Unreachable { connect: connect.to_owned(), waited, tls: access.uses_tls() });
            }
            Ok(Err(e @ (E::AuthFailed | E::NoAuth))) => {
                return Err(CoordError::AuthFailed { connect: connect.to_owned(), reason: e.to_string() })
            }
            Ok(Err(source)) => return Err(zk::call("connect", connect)(source).into()),
        }
    }
}

/// Between attempts to reach a ZooKeeper that did not answer.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// Connects with a bound on the wait and checks the chroot exists.
pub(crate) async fn connect_checked(
    connect_string: &str,
    access: &ZkAccess,
    session_timeout: Duration,
    within: Duration,
) -> Result<Client, CoordError> {
    let zk = connect(connect_string, access, session_timeout, within).await?;
    match zk.check_stat("/").await {
        Ok(Some(_)) => Ok(zk),
        Ok(None) | Err(zookeeper_client::Error::NoNode) => {
            Err(CoordError::BadChroot { connect: connect_string.to_owned() })
        }
        Err(source) => Err(zk::call("check the chroot", connect_string)(source).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn good_connect_strings_pass() {
        for ok in ["127.0.0.1:2181", "zk1:2181,zk2:2182/kafka", "[::1]:2181", "localhost", "a.b-c_d:1/x/y"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn bad_connect_strings_say_what_is_wrong() {
        for (bad, says) in [
            (":::", "no host"),
            ("::1:2181", "no host"),
            ("host:", "port"),
            ("host:0", "port"),
            ("host:99999", "port"),
            ("a:1,,b:2", "no host"),
            ("[nope]:1", "IPv6"),
            ("h:1/kafka/", "chroot"),
        ] {
            let e = check(bad).expect_err(bad).to_string();
            assert!(e.contains(says) && e.contains("zookeeper"), "{bad}: {e}");
        }
    }
}
