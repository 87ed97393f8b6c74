//! A secured ZooKeeper for tests: SASL (DIGEST-MD5 users in a JAAS file,
//! optionally required of every session) and a TLS client port (netty,
//! PEM certificates made here by a throwaway CA).

use std::path::{Path, PathBuf};

use super::zookeeper::write_file;
use super::TestkitError;

/// How the test server is secured.
#[derive(Clone, Debug, Default)]
pub struct ServerSecurity {
    /// DIGEST-MD5 users (name, password) of the JAAS `Server` section.
    pub sasl_users: Vec<(String, String)>,
    /// Refuse every session that has not authenticated with SASL
    /// (`enforce.auth.enabled`, scheme `sasl`).
    pub require_sasl: bool,
    /// Open a TLS client port beside the plain one; clients must present a
    /// certificate of the same CA.
    pub tls: bool,
}

/// PEM files of the throwaway CA, the server and a client.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate.
    pub ca: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A CA the server does not know, for refusal tests.
    pub other_ca: PathBuf,
    server_keystore: PathBuf,
}

fn cert_err(e: rcgen::Error) -> TestkitError {
    TestkitError::InvalidArgument(format!("making test certificates: {e}"))
}

fn ca(name: &str) -> Result<rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, TestkitError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().map_err(cert_err)?).map_err(cert_err)
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    name: &str,
) -> Result<(String, String), TestkitError> {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(cert_err)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().map_err(cert_err)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl TestCerts {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate,
    /// written to `dir`.
    pub fn generate(dir: &Path) -> Result<Self, TestkitError> {
        let authority = ca("zkbalance test CA")?;
        let (server_cert, server_key) = leaf(&authority, "zookeeper")?;
        let (client_cert, client_key) = leaf(&authority, "zkbalance client")?;
        let certs = TestCerts {
            ca: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_keystore: dir.join("server.pem"),
        };
        write_file(&certs.ca, &authority.pem())?;
        write_file(&certs.client_cert, &client_cert)?;
        write_file(&certs.client_key, &client_key)?;
        write_file(&certs.other_ca, &ca("someone else's CA")?.pem())?;
        // ZooKeeper's PEM key store: the key, then the certificate.
        write_file(&certs.server_keystore, &format!("{server_key}{server_cert}"))?;
        Ok(certs)
    }
}

/// The JVM flags, server settings and extra class path for `security`;
/// `secure_port` is the TLS client port when TLS is on.
pub(crate) fn server_settings(
    security: &ServerSecurity,
    dir: &Path,
    certs: Option<&TestCerts>,
    secure_port: Option<u16>,
) -> Result<(Vec<String>, String), TestkitError> {
    let (mut jvm, mut cfg) = (Vec::new(), String::new());
    if !security.sasl_users.is_empty() {
        let users: String = security.sasl_users.iter().map(|(u, p)| format!("\n  user_{u}=\"{p}\"")).collect();
        let jaas = dir.join("jaas.conf");
        write_file(
            &jaas,
            &format!("Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required{users};\n}};\n"),
        )?;
        jvm.push(format!("-Djava.security.auth.login.config={}", jaas.display()));
        cfg.push_str("authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n");
        if security.require_sasl {
            cfg.push_str("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
        }
    }
    if let (Some(certs), Some(port)) = (certs, secure_port) {
        cfg.push_str(&format!("secureClientPort={port}\n"));
        jvm.extend([
            "-Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_owned(),
            format!("-Dzookeeper.ssl.keyStore.location={}", certs.server_keystore.display()),
            "-Dzookeeper.ssl.keyStore.type=PEM".to_owned(),
            format!("-Dzookeeper.ssl.trustStore.location={}", certs.ca.display()),
            "-Dzookeeper.ssl.trustStore.type=PEM".to_owned(),
            "-Dzookeeper.ssl.clientAuth=need".to_owned(),
        ]);
    }
    Ok((jvm, cfg))
}

/// Netty jars the TLS port needs beyond what zookeeper.jar's manifest lists.
pub(crate) const NETTY_JARS: &[&str] = &[
    "/usr/share/java/netty-codec.jar",
    "/usr/share/java/netty-resolver.jar",
    "/usr/share/java/netty-transport-native-unix-common.jar",
];
