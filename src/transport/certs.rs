//! The cluster CA and node certificates (`eternectl ca init`, `eternectl cert issue NODE`).
//!
//! A TLS directory (default [`DEFAULT_TLS_DIR`]) holds:
//!
//! - `ca.crt`, `ca.key`: the cluster CA, made once by [`init_ca`]. Copy `ca.crt` to every node;
//!   keep `ca.key` on the machine that issues certificates only.
//! - `NODE.crt`, `NODE.key`: one node's certificate, made by [`issue_node_cert`], signed by the
//!   CA, valid for the node's name as a DNS name (the name in `cluster.toml`). A node's daemon
//!   reads `ca.crt`, `NODE.crt` and `NODE.key` (see [`super::TlsFiles::in_dir`]).
//!
//! Keys are ECDSA P-256 and written with mode 0600 from the moment the file exists.
//!
//! The CA's subject is a fixed name, so that issuing reconstructs the CA's issuer fields from
//! `ca.key` alone without parsing `ca.crt`; every issued certificate is then checked to chain to
//! `ca.crt`, which catches a `ca.key` and `ca.crt` that do not belong together.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Where `eternectl` and `eterned` look for certificates unless told otherwise.
pub const DEFAULT_TLS_DIR: &str = "/etc/eterne/tls";

/// The CA's subject common name (fixed: see the module docs).
const CA_COMMON_NAME: &str = "EterneCluster CA";

/// How long the CA is valid. An expired certificate takes a cluster down, so this is long;
/// rotate by making a new CA and reissuing.
const CA_VALID_DAYS: u64 = 20 * 365;
/// How long a node certificate is valid.
const NODE_VALID_DAYS: u64 = 10 * 365;
/// Certificates start being valid a little in the past, so a node whose clock is slightly
/// behind the issuing machine's accepts them at once.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// What went wrong making or writing certificates. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file that must not be overwritten exists.
    #[error("{}: already exists; pass --force to replace it (every node certificate signed by the old CA stops working)", .0.display())]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key or certificate could not be parsed or generated.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node name cannot be a certificate's DNS name.
    #[error("node name \"{name}\" cannot be used in a certificate: {reason}; node names must be DNS names (letters, digits, '-', '.')")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The files [`init_ca`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/ca.crt`.
    pub cert: PathBuf,
    /// `DIR/ca.key` (mode 0600).
    pub key: PathBuf,
}

/// The files [`issue_node_cert`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFiles {
    /// `DIR/NODE.crt`.
    pub cert: PathBuf,
    /// `DIR/NODE.key` (mode 0600).
    pub key: PathBuf,
}

/// Makes a new cluster CA in `dir` (created if missing): `ca.crt` and `ca.key`. Refuses to
/// replace an existing `ca.crt` or `ca.key` unless `force`.
pub fn init_ca(dir: &Path, force: bool) -> Result<CaFiles, CertError> {
    let files = CaFiles {
        cert: dir.join("ca.crt"),
        key: dir.join("ca.key"),
    };
    if !force {
        refuse_existing(&[&files.cert, &files.key])?;
    }
    create_dir(dir)?;
    let key = KeyPair::generate().map_err(|e| invalid(&files.key, e))?;
    let cert = ca_params()
        .self_signed(&key)
        .map_err(|e| invalid(&files.cert, e))?;
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(files)
}

/// Issues a certificate for node `name`, signed by the CA in `dir`: `NAME.crt` and `NAME.key`.
/// Refuses to replace existing files unless `force`.
pub fn issue_node_cert(dir: &Path, name: &str, force: bool) -> Result<NodeFiles, CertError> {
    let bad_name = |reason: String| CertError::BadName {
        name: name.to_string(),
        reason,
    };
    // The name becomes a file name and a DNS name: refuse anything that is not both.
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(bad_name("not a plain name".to_string()));
    }
    if ServerName::try_from(name).is_err() || name.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad_name("not a DNS name".to_string()));
    }
    let files = NodeFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    if !force {
        refuse_existing(&[&files.cert, &files.key])?;
    }
    let ca_key_path = dir.join("ca.key");
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(|e| CertError::Invalid {
        path: ca_key_path.clone(),
        reason: format!(
            "cannot read the CA key: {e}; make the CA first with `eternectl ca init --dir {}`",
            dir.display()
        ),
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| invalid(&ca_key_path, e))?;
    let ca_der = CertificateDer::from_pem_file(&ca_cert_path)
        .map_err(|e| invalid(&ca_cert_path, format!("not a PEM certificate: {e}")))?;
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut params =
        CertificateParams::new(vec![name.to_string()]).map_err(|e| bad_name(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is a QUIC server for the nodes that dial it and a client of those it dials.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALID_DAYS);
    let key = KeyPair::generate().map_err(|e| invalid(&files.key, e))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| invalid(&files.cert, e))?;

    // Catch a ca.key that does not belong to ca.crt before anything is written.
    chains_to(cert.der(), &ca_der).map_err(|reason| CertError::Invalid {
        path: ca_key_path.clone(),
        reason: format!(
            "a certificate signed with this key does not verify against {}: {reason}; \
             ca.key and ca.crt must come from the same `eternectl ca init`",
            ca_cert_path.display()
        ),
    })?;
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(files)
}

/// The CA's parameters: the same every time, so an issuer can be rebuilt from `ca.key`.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALID_DAYS);
    params
}

fn set_validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now();
    params.not_before = now
        .checked_sub(BACKDATE)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .into();
    params.not_after = now
        .checked_add(Duration::from_secs(days * 24 * 3600))
        .unwrap_or(now)
        .into();
}

/// Whether `cert` chains to the CA certificate `ca` (signature, validity, usage).
fn chains_to(cert: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> Result<(), String> {
    let anchor = webpki::anchor_from_trusted_cert(ca).map_err(|e| format!("{e:?}"))?;
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("{e:?}"))?;
    ee.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

fn refuse_existing(paths: &[&PathBuf]) -> Result<(), CertError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(CertError::Exists((*p).clone())),
        None => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` with `mode`. The file is created with its mode, so a key is never
/// readable by others, not even for an instant; an existing file gets the mode set too.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> CertError {
    CertError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_then_node_cert_chain_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), false).unwrap();
        let node = issue_node_cert(dir.path(), "alpha", false).unwrap();
        for key in [&ca.key, &node.key] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let ca_der = CertificateDer::from_pem_file(&ca.cert).unwrap();
        let der = CertificateDer::from_pem_file(&node.cert).unwrap();
        chains_to(&der, &ca_der).unwrap();
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let alpha = ServerName::try_from("alpha").unwrap();
        let beta = ServerName::try_from("beta").unwrap();
        assert!(ee.verify_is_valid_for_subject_name(&alpha).is_ok());
        assert!(ee.verify_is_valid_for_subject_name(&beta).is_err());
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), false).unwrap();
        let err = init_ca(dir.path(), false).unwrap_err();
        assert!(
            matches!(err, CertError::Exists(ref p) if p.ends_with("ca.crt")),
            "{err}"
        );
        init_ca(dir.path(), true).unwrap();
        issue_node_cert(dir.path(), "alpha", false).unwrap();
        assert!(matches!(
            issue_node_cert(dir.path(), "alpha", false),
            Err(CertError::Exists(_))
        ));
        issue_node_cert(dir.path(), "alpha", true).unwrap();
    }

    #[test]
    fn errors_name_the_file_or_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue_node_cert(dir.path(), "alpha", false).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
        let err = issue_node_cert(dir.path(), "../etc", false).unwrap_err();
        assert!(matches!(err, CertError::BadName { .. }), "{err}");
        let err = issue_node_cert(dir.path(), "10.0.0.1", false).unwrap_err();
        assert!(matches!(err, CertError::BadName { .. }), "{err}");
    }

    #[test]
    fn a_key_from_another_ca_is_caught() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_ca(a.path(), false).unwrap();
        init_ca(b.path(), false).unwrap();
        fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
        let err = issue_node_cert(a.path(), "alpha", false).unwrap_err();
        assert!(
            err.to_string().contains("same `eternectl ca init`"),
            "{err}"
        );
        assert!(!a.path().join("alpha.key").exists());
    }
}
