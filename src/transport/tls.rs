//! Mutual TLS between nodes: rustls with the ring provider, passed explicitly.
//!
//! - Server side: a client must present a certificate chaining to the cluster CA
//!   ([`WebPkiClientVerifier`]) that is valid for a node name of the config ([`NodeVerifier`]).
//!   A certificate for a name outside the config is refused with the names it carries.
//! - Client side: the server's certificate must chain to the CA and be valid for the name of
//!   the node we meant to dial.
//! - Both sides: TLS 1.3 only (QUIC), ALPN [`ALPN`].
//!
//! A certificate may be valid for several names; [`valid_names`] tells which node names a
//! presented certificate is valid for, so the accepting side can check that the Hello's sender
//! is one of them.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use super::{TlsFiles, TransportError};

/// The ALPN protocol of node-to-node QUIC.
pub const ALPN: &[u8] = b"eterne/1";

/// The ring provider: the only crypto this crate uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA, this node's chain and key, read from disk.
pub(crate) struct Material {
    /// The cluster CA's certificates (normally one).
    pub roots: Arc<RootCertStore>,
    /// This node's certificate chain (its certificate first).
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Material {
    /// Reads the three files; errors name the file and say what to do.
    pub fn load(files: &TlsFiles) -> Result<Material, TransportError> {
        let cas = read_certs(&files.ca)?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca).map_err(|e| tls_err(&files.ca, e))?;
        }
        let chain = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TransportError::Tls {
            file: files.key.clone(),
            reason: format!("cannot read a PEM private key: {e}"),
        })?;
        Ok(Material {
            roots: Arc::new(roots),
            chain,
            key,
        })
    }

    /// The private key's bytes, from which the stateless-reset key is derived.
    pub fn key_bytes(&self) -> &[u8] {
        self.key.secret_der()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TransportError::Tls {
            file: path.to_path_buf(),
            reason: format!("cannot read PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TransportError::Tls {
            file: path.to_path_buf(),
            reason: "no certificate in the file".to_string(),
        });
    }
    Ok(certs)
}

fn tls_err(path: &Path, e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls {
        file: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The server side: mutual TLS, client certificates valid for a node of the config.
pub(crate) fn server_config(
    m: &Material,
    files: &TlsFiles,
    nodes: &[String],
) -> Result<rustls::ServerConfig, TransportError> {
    let inner = WebPkiClientVerifier::builder_with_provider(m.roots.clone(), provider())
        .build()
        .map_err(|e| tls_err(&files.ca, e))?;
    let verifier = Arc::new(NodeVerifier {
        inner,
        nodes: nodes.to_vec(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&files.ca, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| tls_err(&files.cert, format!("certificate or key unusable: {e}")))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data could be replayed; node traffic never needs it.
    config.max_early_data_size = 0;
    Ok(config)
}

/// The client side: the server's certificate must be valid for the dialed node's name.
pub(crate) fn client_config(
    m: &Material,
    files: &TlsFiles,
) -> Result<rustls::ClientConfig, TransportError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&files.ca, e))?
        .with_root_certificates(m.roots.clone())
        .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| tls_err(&files.cert, format!("certificate or key unusable: {e}")))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The node ids (indices into `nodes`) whose names `cert` is valid for. Empty when the
/// certificate cannot be parsed or names no node.
pub(crate) fn valid_names(cert: &CertificateDer<'_>, nodes: &[String]) -> Vec<usize> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    nodes
        .iter()
        .enumerate()
        .filter(|(_, name)| {
            ServerName::try_from(name.as_str())
                .map(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
                .unwrap_or(false)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Wraps the CA check with "and the certificate names a node of the config".
#[derive(Debug)]
struct NodeVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    nodes: Vec<String>,
}

/// A client certificate that chains to the CA but names no node of the config. Its `Debug`
/// is its `Display`: rustls shows the error with `{:?}`, and this text reaches the log line.
struct NotANode {
    presented: Vec<String>,
    nodes: Vec<String>,
}

impl std::fmt::Display for NotANode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate is valid for {}, none of which is a node of the config ({})",
            self.presented.join(", "),
            self.nodes.join(", ")
        )
    }
}

impl std::fmt::Debug for NotANode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for NotANode {}

impl ClientCertVerifier for NodeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !valid_names(end_entity, &self.nodes).is_empty() {
            return Ok(verified);
        }
        // Find the names it does carry, for the log line: webpki reports them when a name
        // does not match.
        let presented = webpki::EndEntityCert::try_from(end_entity)
            .ok()
            .and_then(|ee| {
                let probe = ServerName::try_from("not-a-node.invalid").ok()?;
                match ee.verify_is_valid_for_subject_name(&probe) {
                    Err(webpki::Error::CertNotValidForName(ctx)) => Some(ctx.presented),
                    _ => None,
                }
            })
            .unwrap_or_default();
        // webpki writes names as `DnsName("adam")`; the name alone reads better.
        let presented = presented
            .into_iter()
            .map(|p| {
                p.strip_prefix("DnsName(\"")
                    .and_then(|p| p.strip_suffix("\")"))
                    .map_or(p.clone(), str::to_string)
            })
            .collect();
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(NotANode {
                presented,
                nodes: self.nodes.clone(),
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
