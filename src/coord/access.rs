//! How a session reaches a secured ZooKeeper — `addauth`-style
//! credentials, SASL, TLS — and the ACLs put on what a member creates.
//!
//! One [`ZkAccess`] value serves every connection the crate makes (members,
//! the consumer's start-up checks, inspection, the offset tools), so a
//! secured cluster is configured once.
//!
//! ```
//! use zkbalance::coord::{AclPolicy, Secret, ZkAccess};
//!
//! let access = ZkAccess::new()
//!     .with_auth("digest", Secret::new("app:s3cret"))
//!     .with_acl(AclPolicy::CreatorAllWorldRead);
//! assert!(!format!("{access:?}").contains("s3cret"));
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use zookeeper_client::{Acl, AuthId, Connector, Permission};

/// A secret (a password, credentials, a private key): kept out of `Debug`
/// and every error message.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// A secret given in full.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The contents of a file, without a trailing newline.
    ///
    /// # Errors
    /// [`AccessError::SecretFile`] when the file cannot be read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AccessError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| AccessError::SecretFile { path: path.to_owned(), reason: e.kind().to_string() })?;
        Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
    }

    /// The value of an environment variable.
    ///
    /// # Errors
    /// [`AccessError::SecretEnv`] when it is unset or not Unicode.
    pub fn from_env(var: &str) -> Result<Self, AccessError> {
        std::env::var(var).map(Secret::new).map_err(|_| AccessError::SecretEnv { var: var.to_owned() })
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A setting of [`ZkAccess`] that cannot be used. Never contains a secret.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AccessError {
    /// A secret's file could not be read.
    #[error("cannot read the secret file {}: {reason}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why (the I/O error's kind; never the contents).
        reason: String,
    },
    /// A secret's environment variable is unset.
    #[error("the environment variable {var} is not set")]
    SecretEnv {
        /// The variable.
        var: String,
    },
    /// A TLS file could not be read or holds no usable PEM.
    #[error("ZooKeeper TLS: {what} {}: {reason}", path.display())]
    Tls {
        /// Which file: `CA`, `certificate`, `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A credentials string is not `SCHEME:CREDENTIALS`.
    #[error("ZooKeeper auth must be SCHEME:CREDENTIALS (e.g. digest:user:password); the scheme is missing")]
    BadAuth,
    /// An ACL entry is not `SCHEME:ID:PERMS`.
    #[error("bad ZooKeeper ACL entry {entry:?}: {reason}")]
    BadAcl {
        /// The entry.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// A SASL mechanism the build does not include.
    #[error("ZooKeeper SASL {mechanism} is not in this build (enable the crate feature {feature})")]
    NotBuilt {
        /// The mechanism.
        mechanism: &'static str,
        /// The feature that adds it.
        feature: &'static str,
    },
}

/// SASL for the ZooKeeper session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ZkSasl {
    /// DIGEST-MD5 with a user of the server's JAAS `Server` section.
    DigestMd5 {
        /// The user.
        username: String,
        /// Its password.
        password: Secret,
    },
    /// Kerberos (GSSAPI), with the credentials of the process's ticket
    /// cache or keytab. Needs the crate feature `zk-gssapi` (and the
    /// system's GSSAPI library).
    Gssapi {
        /// The principal's user, if not the default.
        username: Option<String>,
        /// The server's host name in its principal, if not the connected host.
        hostname: Option<String>,
    },
}

/// TLS for the ZooKeeper session: the CA that signs the servers'
/// certificates, and optionally a client certificate and key, parsed once.
#[derive(Clone)]
pub struct ZkTls {
    options: zookeeper_client::TlsOptions,
}

impl std::fmt::Debug for ZkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkTls").finish_non_exhaustive()
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<String, AccessError> {
    let text = std::fs::read_to_string(path).map_err(|e| AccessError::Tls {
        what,
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })?;
    if !text.contains("-----BEGIN ") {
        return Err(AccessError::Tls { what, path: path.to_owned(), reason: "no PEM block".into() });
    }
    Ok(text)
}

impl ZkTls {
    /// The CA (PEM), and a client certificate and its key (PEM) when the
    /// server asks for one.
    ///
    /// # Errors
    /// [`AccessError::Tls`] when a file cannot be read or its certificates
    /// or key cannot be used.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, AccessError> {
        // Parsed here, so a bad file is refused at configuration, not at
        // connect, naming the file at fault.
        let options = zookeeper_client::TlsOptions::new()
            .with_pem_ca(&read_pem("CA", ca)?)
            .map_err(|e| AccessError::Tls { what: "CA", path: ca.to_owned(), reason: e.to_string() })?;
        let options = match identity {
            Some((cert, key)) => {
                let key_pem = Secret::new(read_pem("key", key)?);
                options.with_pem_identity(&read_pem("certificate", cert)?, key_pem.expose()).map_err(|e| {
                    let reason = e.to_string();
                    match reason.contains("key") {
                        true => AccessError::Tls { what: "key", path: key.to_owned(), reason },
                        false => AccessError::Tls { what: "certificate", path: cert.to_owned(), reason },
                    }
                })?
            }
            None => options,
        };
        Ok(ZkTls { options })
    }
}

/// The ACL on the member and owner znodes a member creates.
///
/// Only those: they are the member's own ephemerals, which peers only read
/// and watch. Directories (`/consumers/<group>`, `ids`, `owners/<topic>`,
/// `offsets/<topic>`) and offset znodes stay open to all, as the legacy
/// clients leave them, because every peer of a mixed group must create
/// children in the directories and a Scala peer writes the offset znodes
/// too: a restrictive ACL there would lock peers out of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclPolicy {
    /// `world:anyone:cdrwa`, as pykafka and the Scala consumer create them.
    #[default]
    Open,
    /// All for the creating session's authenticated identities
    /// (`auth::cdrwa`), read for everyone (`world:anyone:r`). Needs
    /// credentials (`addauth`-style or SASL), or ZooKeeper refuses the create.
    CreatorAllWorldRead,
    /// The given entries, `SCHEME:ID:PERMS` each (`digest:app:<hash>:cdrwa`,
    /// `world:anyone:r`, `sasl:app:cdrwa`).
    Custom(Vec<Acl>),
}

impl AclPolicy {
    /// Parses `open`, `creator-all-world-read`, or a comma-separated list
    /// of `SCHEME:ID:PERMS` entries (perms from `cdrwa`).
    ///
    /// # Errors
    /// [`AccessError::BadAcl`] naming the entry.
    pub fn parse(s: &str) -> Result<Self, AccessError> {
        match s.trim() {
            "open" => return Ok(AclPolicy::Open),
            "creator-all-world-read" => return Ok(AclPolicy::CreatorAllWorldRead),
            _ => {}
        }
        let bad = |entry: &str, reason| AccessError::BadAcl { entry: entry.to_owned(), reason };
        let mut acls = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (rest, perms) = entry.rsplit_once(':').ok_or_else(|| bad(entry, "want SCHEME:ID:PERMS"))?;
            let (scheme, id) = rest.split_once(':').ok_or_else(|| bad(entry, "want SCHEME:ID:PERMS"))?;
            if scheme.is_empty() {
                return Err(bad(entry, "empty scheme"));
            }
            let mut permission = Permission::NONE;
            for c in perms.chars() {
                permission = permission
                    | match c {
                        'c' => Permission::CREATE,
                        'd' => Permission::DELETE,
                        'r' => Permission::READ,
                        'w' => Permission::WRITE,
                        'a' => Permission::ADMIN,
                        _ => return Err(bad(entry, "permissions are letters of cdrwa")),
                    };
            }
            if permission == Permission::NONE {
                return Err(bad(entry, "no permissions"));
            }
            acls.push(Acl::new(permission, AuthId::new(scheme, id)));
        }
        if acls.is_empty() {
            return Err(bad(s, "no entries"));
        }
        Ok(AclPolicy::Custom(acls))
    }

    /// The entries for a member or owner znode.
    pub(crate) fn entries(&self) -> Vec<Acl> {
        match self {
            AclPolicy::Open => vec![Acl::new(Permission::ALL, AuthId::anyone())],
            AclPolicy::CreatorAllWorldRead => {
                vec![Acl::new(Permission::ALL, AuthId::authed()), Acl::new(Permission::READ, AuthId::anyone())]
            }
            AclPolicy::Custom(acls) => acls.clone(),
        }
    }
}

/// How sessions reach and authenticate to ZooKeeper, and the ACL of the
/// member's own znodes. The default is what the legacy clients do: plain
/// TCP, no credentials, open ACLs.
#[derive(Clone, Debug, Default)]
pub struct ZkAccess {
    auth: Vec<(String, Secret)>,
    sasl: Option<ZkSasl>,
    tls: Option<ZkTls>,
    acl: AclPolicy,
}

impl ZkAccess {
    /// Plain TCP, no credentials, open ACLs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `addauth`-style credentials: `scheme` (e.g. `digest`) and its
    /// credentials (`user:password` for digest), sent on every connection.
    pub fn with_auth(mut self, scheme: impl Into<String>, credentials: Secret) -> Self {
        self.auth.push((scheme.into(), credentials));
        self
    }

    /// Adds credentials given as one `SCHEME:CREDENTIALS` secret, as
    /// `zkCli`'s `addauth` takes them.
    ///
    /// # Errors
    /// [`AccessError::BadAuth`] without a scheme.
    pub fn with_auth_string(self, auth: &Secret) -> Result<Self, AccessError> {
        match auth.expose().split_once(':') {
            Some((scheme, credentials)) if !scheme.is_empty() => Ok(self.with_auth(scheme, Secret::new(credentials))),
            _ => Err(AccessError::BadAuth),
        }
    }

    /// SASL for every session.
    pub fn with_sasl(mut self, sasl: ZkSasl) -> Self {
        self.sasl = Some(sasl);
        self
    }

    /// TLS for every connection.
    pub fn with_tls(mut self, tls: ZkTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The ACL of the member and owner znodes (see [`AclPolicy`]).
    pub fn with_acl(mut self, acl: AclPolicy) -> Self {
        self.acl = acl;
        self
    }

    /// The ACL policy.
    pub fn acl(&self) -> &AclPolicy {
        &self.acl
    }

    /// Whether sessions use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether any credentials are configured.
    pub fn authenticates(&self) -> bool {
        !self.auth.is_empty() || self.sasl.is_some()
    }

    /// Refuses combinations that cannot work, before any connection.
    pub(crate) fn validate(&self) -> Result<(), AccessError> {
        if let Some(ZkSasl::Gssapi { .. }) = self.sasl {
            if !cfg!(feature = "zk-gssapi") {
                return Err(AccessError::NotBuilt { mechanism: "GSSAPI", feature: "zk-gssapi" });
            }
        }
        Ok(())
    }

    /// A session to `connect`, as configured.
    pub(crate) async fn connect(
        &self,
        connect: &str,
        session_timeout: Duration,
    ) -> Result<zookeeper_client::Client, zookeeper_client::Error> {
        let mut connector: Connector = zookeeper_client::Client::connector().with_session_timeout(session_timeout);
        for (scheme, credentials) in &self.auth {
            connector = connector.with_auth(scheme, credentials.expose().as_bytes());
        }
        match &self.sasl {
            Some(ZkSasl::DigestMd5 { username, password }) => {
                connector = connector.with_sasl(zookeeper_client::SaslOptions::digest_md5(
                    username.clone(),
                    password.expose().to_owned(),
                ));
            }
            #[cfg(feature = "zk-gssapi")]
            Some(ZkSasl::Gssapi { username, hostname }) => {
                let mut options = zookeeper_client::SaslOptions::gssapi();
                if let Some(u) = username {
                    options = options.with_username(u.clone());
                }
                if let Some(h) = hostname {
                    options = options.with_hostname(h.clone());
                }
                connector = connector.with_sasl(options);
            }
            #[cfg(not(feature = "zk-gssapi"))]
            Some(ZkSasl::Gssapi { .. }) => return Err(zookeeper_client::Error::BadArguments(&"GSSAPI is not built")),
            None => {}
        }
        match &self.tls {
            Some(tls) => connector.with_tls(tls.options.clone()).secure_connect(connect).await,
            None => connector.connect(connect).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_lists_parse_as_zkcli_writes_them() {
        let AclPolicy::Custom(acls) = AclPolicy::parse("world:anyone:r, digest:app:abc=:cdrwa").unwrap() else {
            panic!("a list");
        };
        assert_eq!(acls[0], Acl::new(Permission::READ, AuthId::anyone()));
        assert_eq!(acls[1], Acl::new(Permission::ALL, AuthId::new("digest", "app:abc=")));
        assert_eq!(AclPolicy::parse("open").unwrap(), AclPolicy::Open);
        for bad in ["", "world:anyone", "world:anyone:x", ":x:r", "world:anyone:"] {
            assert!(AclPolicy::parse(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn a_bad_tls_file_is_named() {
        let dir = tempfile_dir();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let not_pem = write("ca.txt", "not a certificate");
        let err = ZkTls::from_files(&not_pem, None).unwrap_err().to_string();
        assert!(err.contains("CA") && err.contains("ca.txt"), "{err}");
        let missing = dir.join("absent.pem");
        let err = ZkTls::from_files(&missing, None).unwrap_err().to_string();
        assert!(err.contains("absent.pem"), "{err}");
    }

    #[cfg(feature = "testkit")]
    #[test]
    fn a_bad_client_key_is_named_and_good_files_load() {
        let dir = tempfile_dir().join("certs");
        std::fs::create_dir_all(&dir).unwrap();
        let certs = crate::testkit::TestCerts::generate(&dir).unwrap();
        assert!(ZkTls::from_files(&certs.ca, Some((&certs.client_cert, &certs.client_key))).is_ok());
        // A certificate where the key should be.
        let err = ZkTls::from_files(&certs.ca, Some((&certs.client_cert, &certs.ca))).unwrap_err().to_string();
        assert!(err.contains("key") && err.contains("ca.pem"), "{err}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("zkbalance-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let access = ZkAccess::new()
            .with_auth_string(&Secret::new("digest:app:hunter2"))
            .unwrap()
            .with_sasl(ZkSasl::DigestMd5 { username: "app".into(), password: Secret::new("hunter2") });
        assert!(!format!("{access:?}").contains("hunter2"));
        assert!(matches!(ZkAccess::new().with_auth_string(&Secret::new("hunter2")), Err(AccessError::BadAuth)));
        assert!(!AccessError::BadAuth.to_string().contains("hunter2"));
    }
}
