//! TLS for nats-servers: a certificate authority of the test's own, the
//! server and client certificates it signs, and the `tls` block that uses
//! them.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// A certificate authority, and the certificates it signs, as PEM files.
#[derive(Debug)]
pub struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The authority's own certificate: what a peer trusts.
    pub ca: PathBuf,
    dir: PathBuf,
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Authority {
    /// A new authority named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem())?;
        Ok(Self {
            issuer: rcgen::Issuer::new(params, key),
            ca,
            dir: dir.to_path_buf(),
        })
    }

    /// A certificate for 127.0.0.1 and localhost, for a server.
    pub fn server(&self, name: &str) -> Result<CertFiles> {
        self.sign(
            name,
            vec!["127.0.0.1".into(), "localhost".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A certificate for a client of mutual TLS.
    pub fn client(&self, name: &str) -> Result<CertFiles> {
        self.sign(
            name,
            vec![format!("{name}.client.test")],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn sign(
        &self,
        name: &str,
        names: Vec<String>,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Result<CertFiles> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}

/// A `tls` block: the server presents `server`; with `clients_from`, it
/// also asks every client for a certificate signed by that authority.
pub fn tls_config(server: &CertFiles, clients_from: Option<&Path>) -> String {
    let mut block = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  timeout: 5\n",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    if let Some(ca) = clients_from {
        block.push_str(&format!(
            "  ca_file: {:?}\n  verify: true\n",
            ca.display().to_string()
        ));
    }
    block.push_str("}\n");
    block
}
