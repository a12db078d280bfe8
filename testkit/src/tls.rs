//! A test certificate authority for TLS tests: one CA per test process and
//! a node certificate for `127.0.0.1` and `localhost` signed by it, as PEM
//! files in a temporary directory. Once [`test_ca`] has been called,
//! [`crate::http_client`] trusts the CA, so the usual helpers talk to
//! `https://` nodes as they do to `http://` ones.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::process::temp_dir;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// The CA and the node certificate it signed, on disk.
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
    ca_pem: String,
}

static CA: OnceLock<TestCa> = OnceLock::new();

/// The process's test CA, generated on first use.
pub fn test_ca() -> &'static TestCa {
    CA.get_or_init(TestCa::generate)
}

/// The CA, if a test of this process made one.
pub(crate) fn trusted() -> Option<&'static TestCa> {
    CA.get()
}

impl TestCa {
    fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("generating the CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "YAK test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, ca_key).expect("self-signing the CA");

        let node_key = KeyPair::generate().expect("generating the node key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("node certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "yak node");
        let node = params
            .signed_by(&node_key, &ca)
            .expect("signing the node certificate");

        let dir = temp_dir("yak-tls-");
        let write = |name: &str, pem: &str| {
            std::fs::write(dir.path().join(name), pem).expect("writing a PEM file");
        };
        write("ca.pem", &ca.pem());
        write("node.pem", &node.pem());
        write("node-key.pem", &node_key.serialize_pem());
        Self {
            ca_pem: ca.pem(),
            dir,
        }
    }

    /// The CA certificate (PEM), for `--tls-ca`.
    pub fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The node certificate (PEM), for `--tls-cert`.
    pub fn cert_path(&self) -> PathBuf {
        self.path("node.pem")
    }

    /// The node certificate's private key (PEM), for `--tls-key`.
    pub fn key_path(&self) -> PathBuf {
        self.path("node-key.pem")
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn path(&self, name: &str) -> PathBuf {
        Path::new(self.dir.path()).join(name)
    }

    /// The node's TLS settings: serve HTTPS with this CA's certificate
    /// and trust it when calling other nodes.
    pub fn node_tls(&self) -> yak_launch::NodeTls {
        yak_launch::NodeTls {
            cert: self.cert_path(),
            key: self.key_path(),
            ca: Some(self.ca_path()),
        }
    }
}
