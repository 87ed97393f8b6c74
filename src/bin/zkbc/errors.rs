//! One error type for every subcommand, each kind with its own exit code
//! (sysexits where one fits), so scripts can tell failures apart.

use zkbalance::consumer::ConsumerError;
use zkbalance::coord::CoordError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag's value is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    UnknownGroup(String),
    #[error("{0}")]
    UnknownTopic(String),
    #[error("malformed znode: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    BadChroot(String),
    /// ZooKeeper refused the credentials, or the TLS handshake failed.
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    Kafka(String),
    /// Members are active and `--force` was not given.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    ZooKeeperNotInstalled(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 64,
            CliError::Malformed(_) => 65,
            CliError::UnknownGroup(_) | CliError::UnknownTopic(_) => 66,
            CliError::BadChroot(_) => 68,
            CliError::Unreachable(_) | CliError::ZooKeeperNotInstalled(_) => 69,
            CliError::Internal(_) => 70,
            CliError::Refused(_) => 75,
            CliError::AuthFailed(_) => 77,
            CliError::Kafka(_) => 76,
        }
    }
}

impl From<CoordError> for CliError {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Config(c) => CliError::Usage(c.to_string()),
            CoordError::Access(a) => CliError::Usage(a.to_string()),
            CoordError::AuthFailed { .. } => CliError::AuthFailed(e.to_string()),
            CoordError::Unreachable { .. } => CliError::Unreachable(e.to_string()),
            CoordError::BadChroot { .. } => CliError::BadChroot(e.to_string()),
            CoordError::ZooKeeper(ref z) if z.code == zkbalance::zk_call::ZkCode::NoAuth => {
                CliError::AuthFailed(e.to_string())
            }
            _ => CliError::Internal(e.to_string()),
        }
    }
}

impl From<ConsumerError> for CliError {
    fn from(e: ConsumerError) -> Self {
        match e {
            ConsumerError::Config(c) => CliError::Usage(c.to_string()),
            ConsumerError::Group(g) => g.into(),
            ConsumerError::UnknownTopic { .. } => CliError::UnknownTopic(e.to_string()),
            ConsumerError::NoBrokers { .. } | ConsumerError::NoListener(_) | ConsumerError::Kafka(_) => {
                CliError::Kafka(e.to_string())
            }
            ConsumerError::Offset(zkbalance::offsets::OffsetError::Malformed(m)) => CliError::Malformed(m.to_string()),
            other => CliError::Internal(other.to_string()),
        }
    }
}

impl From<zkbalance::zk_call::ZkCallError> for CliError {
    fn from(e: zkbalance::zk_call::ZkCallError) -> Self {
        CliError::Internal(e.to_string())
    }
}
