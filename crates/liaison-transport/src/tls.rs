//! TLS material for QUIC: identities (certificate chain + key), server and client settings, and the rustls configs built from them.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::TransportError;

/// A certificate chain (leaf first) and its private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// An identity from DER; the chain must hold at least the leaf certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TransportError> {
        if chain.is_empty() {
            return Err(TransportError::Certificate {
                reason: "empty certificate chain".into(),
            });
        }
        Ok(Self { chain, key })
    }

    /// Loads the chain from a PEM file of certificates (leaf first) and the key from a PEM file
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TransportError> {
        let chain = read_pem_certs(cert_path.as_ref())?;
        let key_path = key_path.as_ref();
        let mut reader = BufReader::new(open(key_path)?);
        let key = rustls_pemfile::private_key(&mut reader)
            .map_err(|e| cert_error(key_path, &e.to_string()))?
            .ok_or_else(|| cert_error(key_path, "no private key found"))?;
        Self::new(chain, key)
    }

    /// Generates a self-signed certificate for `names` (DNS names or IP addresses), for
    /// development and tests. A peer trusts it with [`QuicClientTls::trust_certificates`] (or
    /// [`QuicServerTls::require_client_certificates`]) given [`cert_der`](Self::cert_der).
    pub fn self_signed(names: &[&str]) -> Result<Self, TransportError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(|e| TransportError::Certificate {
                reason: format!("cannot generate a self-signed certificate: {e}"),
            })?;
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        Self::new(vec![certified.cert.der().clone()], key)
    }

    /// The leaf certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        // The constructor refuses an empty chain, so the leaf exists.
        &self.chain[0]
    }

    /// The whole chain, leaf first (DER).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key (DER).
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a QUIC listener presents, and whether it requires client certificates.
#[derive(Debug, Clone)]
pub struct QuicServerTls {
    identity: TlsIdentity,
    client_roots: Option<Vec<CertificateDer<'static>>>,
}

impl QuicServerTls {
    /// Presents `identity`; clients are not asked for certificates.
    pub fn new(identity: TlsIdentity) -> Self {
        Self {
            identity,
            client_roots: None,
        }
    }

    /// Loads the certificate chain and key from PEM files.
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TransportError> {
        TlsIdentity::from_pem_files(cert_path, key_path).map(Self::new)
    }

    /// A freshly generated self-signed certificate for `names` (development and tests); clients
    /// trust it through [`cert_der`](Self::cert_der).
    pub fn self_signed(names: &[&str]) -> Result<Self, TransportError> {
        TlsIdentity::self_signed(names).map(Self::new)
    }

    /// Requires every client to present a certificate chain that verifies against `roots`
    /// (mutual TLS). The verified chain appears in the server-side
    /// [`TransportInfo::tls_peer_certificates`](crate::TransportInfo::tls_peer_certificates).
    #[must_use]
    pub fn require_client_certificates(mut self, roots: Vec<CertificateDer<'static>>) -> Self {
        self.client_roots = Some(roots);
        self
    }

    /// The server's leaf certificate (DER), for a client to trust.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.identity.cert_der()
    }

    /// The server's identity.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// Whether client certificates are required and verified.
    pub fn verifies_clients(&self) -> bool {
        self.client_roots.is_some()
    }
}

#[derive(Clone)]
enum ServerVerification {
    Roots(Vec<CertificateDer<'static>>),
    DangerousSkip,
}

/// How a QUIC client verifies servers, and what it presents for mutual TLS.
///
/// The default trusts no certificate at all: every handshake fails until roots are given.
#[derive(Clone)]
pub struct QuicClientTls {
    verification: ServerVerification,
    identity: Option<TlsIdentity>,
    server_name: Option<String>,
}

impl Default for QuicClientTls {
    fn default() -> Self {
        Self {
            verification: ServerVerification::Roots(Vec::new()),
            identity: None,
            server_name: None,
        }
    }
}

impl fmt::Debug for QuicClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verification = match &self.verification {
            ServerVerification::Roots(roots) => format!("{} trusted roots", roots.len()),
            ServerVerification::DangerousSkip => "DANGEROUS: no verification".to_owned(),
        };
        f.debug_struct("QuicClientTls")
            .field("verification", &verification)
            .field("identity", &self.identity)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl QuicClientTls {
    /// Trusts servers whose chain verifies against `roots` (a self-signed server certificate can
    /// be its own root).
    pub fn trust_certificates(roots: Vec<CertificateDer<'static>>) -> Self {
        Self {
            verification: ServerVerification::Roots(roots),
            ..Self::default()
        }
    }

    /// Trusts the certificates of a PEM file as roots.
    pub fn trust_pem_file(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        read_pem_certs(path.as_ref()).map(Self::trust_certificates)
    }

    /// Accepts any server certificate without verification, for local development only: an
    /// attacker on the path can impersonate the server. The connection is still encrypted; its
    /// [`TransportInfo::tls_peer_certificates`](crate::TransportInfo::tls_peer_certificates) is
    /// `None` because nothing was verified.
    pub fn dangerous_skip_verification() -> Self {
        Self {
            verification: ServerVerification::DangerousSkip,
            ..Self::default()
        }
    }

    /// Presents `identity` to servers that ask for a client certificate.
    #[must_use]
    pub fn with_identity(mut self, identity: TlsIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Verifies the server under this name instead of the host of the address dialled.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name the server certificate is verified against, if overridden.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether the server's chain is verified (false only with
    /// [`dangerous_skip_verification`](Self::dangerous_skip_verification)).
    pub fn verifies_server(&self) -> bool {
        matches!(self.verification, ServerVerification::Roots(_))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore, TransportError> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone())?;
    }
    Ok(store)
}

/// The rustls server config for a QUIC listener speaking `alpn`.
pub(crate) fn server_config(
    tls: &QuicServerTls,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TransportError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match &tls.client_roots {
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                provider,
            )
            .build()
            .map_err(|e| TransportError::InvalidConfig {
                reason: format!("client certificate roots: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(tls.identity.chain.clone(), tls.identity.key.clone_key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The rustls client config for dialling a QUIC listener speaking `alpn`.
pub(crate) fn client_config(
    tls: &QuicClientTls,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TransportError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder =
        match &tls.verification {
            ServerVerification::Roots(roots) => builder.with_root_certificates(root_store(roots)?),
            ServerVerification::DangerousSkip => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipServerVerification {
                    algorithms: provider.signature_verification_algorithms,
                })),
        };
    let mut config = match &tls.identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

fn open(path: &Path) -> Result<File, TransportError> {
    File::open(path).map_err(|e| cert_error(path, &e.to_string()))
}

fn cert_error(path: &Path, reason: &str) -> TransportError {
    TransportError::Certificate {
        reason: format!("{}: {reason}", path.display()),
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let mut reader = BufReader::new(open(path)?);
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error(path, "no certificate found"));
    }
    Ok(certs)
}

/// Accepts any server certificate but still checks that the server holds its key (handshake
/// signatures are verified), see [`QuicClientTls::dangerous_skip_verification`].
#[derive(Debug)]
struct SkipServerVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_builds_both_configs() {
        let server = QuicServerTls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        assert_eq!(server.identity().chain().len(), 1);
        let config = server_config(&server, b"x").unwrap();
        assert_eq!(config.alpn_protocols, vec![b"x".to_vec()]);

        let client = QuicClientTls::trust_certificates(vec![server.cert_der().clone()])
            .with_identity(TlsIdentity::self_signed(&["client"]).unwrap());
        assert!(client.verifies_server());
        client_config(&client, b"x").unwrap();
        assert!(!QuicClientTls::dangerous_skip_verification().verifies_server());
        client_config(&QuicClientTls::dangerous_skip_verification(), b"x").unwrap();

        let mutual = server.require_client_certificates(vec![TlsIdentity::self_signed(&["c"])
            .unwrap()
            .cert_der()
            .clone()]);
        assert!(mutual.verifies_clients());
        server_config(&mutual, b"x").unwrap();
    }

    #[test]
    fn empty_chain_and_missing_files_are_errors() {
        let key = TlsIdentity::self_signed(&["x"]).unwrap().key().clone_key();
        assert!(matches!(
            TlsIdentity::new(Vec::new(), key),
            Err(TransportError::Certificate { .. })
        ));
        assert!(matches!(
            QuicClientTls::trust_pem_file("/nonexistent/liaison/roots.pem"),
            Err(TransportError::Certificate { .. })
        ));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let identity = TlsIdentity::self_signed(&["x"]).unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains("redacted"));
    }
}
