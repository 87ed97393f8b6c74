//! The flags of a secured cluster, shared by every subcommand that talks
//! to ZooKeeper or Kafka. Secrets come from a flag, an environment variable
//! or a file; clap never shows an environment variable's value in `--help`.

use std::path::PathBuf;

use zkbalance::coord::{AclPolicy, Secret, ZkAccess, ZkSasl, ZkTls};
use zkbalance::kafka_access::KafkaAccess;

use crate::errors::CliError;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ZkSecurity {
    /// ZooKeeper credentials as zkCli's `addauth` takes them:
    /// SCHEME:CREDENTIALS, e.g. digest:user:password.
    #[arg(long, env = "ZKB_ZOOKEEPER_AUTH", hide_env_values = true, value_name = "SCHEME:CREDENTIALS")]
    zookeeper_auth: Option<String>,
    /// The same, read from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "zookeeper_auth")]
    zookeeper_auth_file: Option<PathBuf>,
    /// SASL for ZooKeeper: digest-md5:USER (password from
    /// --zookeeper-sasl-password-file or $ZKB_ZOOKEEPER_SASL_PASSWORD), or
    /// gssapi[:USER] (Kerberos; needs the zk-gssapi build feature).
    #[arg(long, value_name = "MECHANISM[:USER]")]
    zookeeper_sasl: Option<String>,
    /// The DIGEST-MD5 password, read from a file.
    #[arg(long, value_name = "FILE")]
    zookeeper_sasl_password_file: Option<PathBuf>,
    /// TLS to ZooKeeper: the CA (PEM) that signs the servers' certificates.
    #[arg(long, value_name = "FILE")]
    zookeeper_tls_ca: Option<PathBuf>,
    /// A client certificate (PEM), when the server asks for one.
    #[arg(long, value_name = "FILE", requires_all = ["zookeeper_tls_key", "zookeeper_tls_ca"])]
    zookeeper_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "zookeeper_tls_cert")]
    zookeeper_tls_key: Option<PathBuf>,
    /// ACL of the member and owner znodes this process creates: open
    /// (world:anyone:cdrwa, as the legacy clients), creator-all-world-read,
    /// or SCHEME:ID:PERMS[,...]. Directories and offsets stay open.
    #[arg(long, value_name = "POLICY", default_value = "open")]
    zookeeper_acl: String,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

impl ZkSecurity {
    /// The access these flags describe; files and variables are read now.
    pub fn access(&self) -> Result<ZkAccess, CliError> {
        let mut access = ZkAccess::new().with_acl(AclPolicy::parse(&self.zookeeper_acl).map_err(usage)?);
        let auth = match (&self.zookeeper_auth, &self.zookeeper_auth_file) {
            (Some(a), _) => Some(Secret::new(a.as_str())),
            (None, Some(file)) => Some(Secret::from_file(file).map_err(usage)?),
            (None, None) => None,
        };
        if let Some(auth) = auth {
            access = access.with_auth_string(&auth).map_err(usage)?;
        }
        if let Some(sasl) = &self.zookeeper_sasl {
            let (mechanism, user) = match sasl.split_once(':') {
                Some((m, u)) => (m, Some(u.to_owned())),
                None => (sasl.as_str(), None),
            };
            let sasl = match mechanism.to_ascii_lowercase().as_str() {
                "digest-md5" => {
                    let username = user.filter(|u| !u.is_empty()).ok_or_else(|| {
                        CliError::Usage("--zookeeper-sasl digest-md5 needs a user: digest-md5:USER".into())
                    })?;
                    let password = match &self.zookeeper_sasl_password_file {
                        Some(file) => Secret::from_file(file),
                        None => Secret::from_env("ZKB_ZOOKEEPER_SASL_PASSWORD"),
                    }
                    .map_err(|e| {
                        CliError::Usage(format!(
                            "--zookeeper-sasl digest-md5 needs a password \
                             (--zookeeper-sasl-password-file or $ZKB_ZOOKEEPER_SASL_PASSWORD): {e}"
                        ))
                    })?;
                    ZkSasl::DigestMd5 { username, password }
                }
                "gssapi" => ZkSasl::Gssapi { username: user, hostname: None },
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown ZooKeeper SASL mechanism {other:?} (digest-md5, gssapi)"
                    )))
                }
            };
            access = access.with_sasl(sasl);
        }
        if let Some(ca) = &self.zookeeper_tls_ca {
            let identity = self.zookeeper_tls_cert.as_deref().zip(self.zookeeper_tls_key.as_deref());
            access = access.with_tls(ZkTls::from_files(ca, identity).map_err(usage)?);
        }
        Ok(access)
    }
}

/// How to reach Kafka: shared by `consume`, `group describe` and
/// `offsets reset`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KafkaArgs {
    /// A librdkafka property, KEY=VALUE (repeatable), as kcat's -X: e.g.
    /// security.protocol=SSL, ssl.ca.location=FILE, sasl.mechanisms=PLAIN.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    kafka_property: Vec<(String, String)>,
    /// Bootstrap from these brokers instead of the registrations in
    /// ZooKeeper (when the registered addresses are not reachable from here).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    bootstrap_server: Option<String>,
    /// Use the brokers' endpoints of this listener name. Default: the
    /// endpoint speaking -X security.protocol (PLAINTEXT when not given).
    #[arg(long, value_name = "NAME")]
    listener: Option<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

impl KafkaArgs {
    pub fn access(&self) -> KafkaAccess {
        KafkaAccess {
            bootstrap: self.bootstrap_server.clone(),
            listener: self.listener.clone(),
            properties: self.kafka_property.clone(),
        }
    }
}
