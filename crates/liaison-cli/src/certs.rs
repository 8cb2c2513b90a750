//! The QUIC server certificate of `liaison serve`: loaded from PEM files, or generated
//! self-signed at start, with its SHA-256 fingerprint and PEM text for clients to trust.

use std::path::Path;

use liaison_session::Fingerprint;
use liaison_transport::{QuicServerTls, TlsIdentity};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::CliError;

/// A server certificate and what a client needs to trust it.
#[derive(Debug)]
pub(crate) struct ServerCert {
    /// The TLS settings of the QUIC listeners.
    pub(crate) tls: QuicServerTls,
    /// SHA-256 of the leaf certificate (DER).
    pub(crate) fingerprint: Fingerprint,
    /// The certificate chain as PEM.
    pub(crate) pem: String,
    /// Whether it was generated at start (not loaded).
    pub(crate) generated: bool,
}

impl ServerCert {
    /// Loads the chain from `cert` and the key from `key` (PEM files).
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Self, CliError> {
        let tls = QuicServerTls::from_pem_files(cert, key)?;
        let pem = std::fs::read_to_string(cert)
            .map_err(|e| CliError::io(format!("cannot read {}", cert.display()), e))?;
        Ok(Self {
            fingerprint: Fingerprint::of_der(tls.cert_der()),
            tls,
            pem,
            generated: false,
        })
    }

    /// A fresh self-signed certificate for `names` (DNS names or IP addresses).
    pub(crate) fn self_signed(names: Vec<String>) -> Result<Self, CliError> {
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| {
            CliError::Usage(format!("cannot generate a self-signed certificate: {e}"))
        })?;
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let identity = TlsIdentity::new(vec![certified.cert.der().clone()], key)?;
        Ok(Self {
            fingerprint: Fingerprint::of_der(identity.cert_der()),
            tls: QuicServerTls::new(identity),
            pem: certified.cert.pem(),
            generated: true,
        })
    }

    /// Writes the certificate (not the key) as PEM to `path`.
    pub(crate) fn write_pem(&self, path: &Path) -> Result<(), CliError> {
        std::fs::write(path, &self.pem)
            .map_err(|e| CliError::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use liaison_transport::QuicClientTls;

    use super::*;

    #[test]
    fn a_generated_certificate_round_trips_through_its_pem() {
        let cert = ServerCert::self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(cert.generated);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        cert.write_pem(&path).unwrap();
        // A client trusting the written file trusts exactly this certificate.
        assert!(QuicClientTls::trust_pem_file(&path)
            .unwrap()
            .verifies_server());
        assert_eq!(
            cert.fingerprint,
            Fingerprint::of_der(cert.tls.cert_der()),
            "the fingerprint is the leaf's"
        );
        assert_eq!(cert.fingerprint.to_string().len(), 64);
    }
}
