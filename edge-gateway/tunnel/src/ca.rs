//! The deployment CA and the edge server certificates it signs.
//!
//! A deployment has one CA (self-signed, ECDSA P-256 with SHA-256, common name
//! [`CA_COMMON_NAME`]). Connectors trust only that CA; each edge presents a leaf certificate it
//! signed for the edge's DNS names and IP addresses. Keys are generated from the OS RNG by ring;
//! files are PEM, private keys written with mode 0600.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The subject common name of every deployment CA.
pub const CA_COMMON_NAME: &str = "Gatehouse deployment CA";

/// How long a generated CA is valid, in years from the start of the current year.
pub const CA_VALIDITY_YEARS: i32 = 10;

/// How long a generated edge certificate is valid, in years from the start of the current year.
/// Edges are re-issued on deploy; two years keeps a forgotten one working across a new year.
pub const EDGE_CERT_VALIDITY_YEARS: i32 = 2;

/// Why a certificate could not be generated, loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("failed to generate or sign a certificate")]
    Generate(#[source] rcgen::Error),
    #[error("invalid private key pem")]
    InvalidKey(#[source] rcgen::Error),
    #[error("{0:?} is not a valid dns name for a certificate")]
    InvalidDnsName(String),
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A deployment CA: its certificate (PEM, as connectors trust it) and its signing key.
pub struct DeploymentCa {
    cert_pem: String,
    /// The CA as rcgen's issuer. For a CA loaded from files this is a re-signed twin of the
    /// stored certificate (same subject, same key, so the same key identifier): what signing
    /// needs, without parsing the stored certificate.
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl DeploymentCa {
    /// A new CA with a fresh P-256 key.
    ///
    /// # Errors
    /// Key generation or self-signing failed.
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let issuer = ca_params().self_signed(&key).map_err(CaError::Generate)?;
        Ok(Self {
            cert_pem: issuer.pem(),
            issuer,
            key,
        })
    }

    /// A CA from its certificate and PKCS#8 private key, both PEM.
    ///
    /// The certificate is kept as it is (it is what connectors trust); the key signs. A key that
    /// does not belong to the certificate yields leaf certificates that fail verification.
    ///
    /// # Errors
    /// The key is not a PKCS#8 P-256 key, or re-signing failed.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(CaError::InvalidKey)?;
        let issuer = ca_params().self_signed(&key).map_err(CaError::Generate)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
            key,
        })
    }

    /// Reads a CA written by [`write_pem_files`](Self::write_pem_files).
    ///
    /// # Errors
    /// A file cannot be read, or see [`from_pem`](Self::from_pem).
    pub fn read_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        let cert = read_to_string(cert_path)?;
        let key = read_to_string(key_path)?;
        Self::from_pem(&cert, &key)
    }

    /// Writes the certificate (mode 0644) and the private key (mode 0600) as PEM.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_pem_files(&self, cert_path: &Path, key_path: &Path) -> Result<(), CaError> {
        write_file(cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_file(key_path, self.key.serialize_pem().as_bytes(), 0o600)
    }

    /// The CA certificate as PEM: what [`crate::config::connector_client_config`] trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for an edge, valid for each of `names` (DNS names, or IP addresses
    /// in text form), signed by this CA with a fresh P-256 key.
    ///
    /// # Errors
    /// A name is neither an IP address nor a valid DNS name, or signing failed.
    pub fn issue_edge_cert(&self, names: &[String]) -> Result<EdgeCert, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.subject_alt_names = names
            .iter()
            .map(|name| san(name))
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, EDGE_CERT_VALIDITY_YEARS);
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(CaError::Generate)?;
        Ok(EdgeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

impl std::fmt::Debug for DeploymentCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentCa").finish_non_exhaustive()
    }
}

/// An edge's server certificate and private key.
#[derive(Clone)]
pub struct EdgeCert {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl EdgeCert {
    /// The leaf certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The chain an edge presents: the leaf alone (connectors hold the CA).
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone()]
    }

    /// The private key for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Writes the certificate (mode 0644) and the private key (mode 0600) as PEM.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_pem_files(&self, cert_path: &Path, key_path: &Path) -> Result<(), CaError> {
        write_file(cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_file(key_path, self.key_pem.as_bytes(), 0o600)
    }
}

impl std::fmt::Debug for EdgeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCert").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY_YEARS);
    params
}

fn san(name: &str) -> Result<SanType, CaError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || CaError::InvalidDnsName(name.to_owned());
    if !valid_dns_name(name) {
        return Err(invalid());
    }
    name.try_into().map(SanType::DnsName).map_err(|_| invalid())
}

/// Letters, digits, `-` and `_` in non-empty labels of at most 63 bytes, 253 bytes in all
/// (RFC 1035 §2.3.4), optionally under a leading `*.` wildcard label.
fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// From January 1st of the current year (so a slightly slow clock elsewhere still accepts the
/// certificate) to the same day `years` later. The year is computed with the mean Gregorian
/// year length, exact enough for a bound that starts at a year boundary.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = 1970 + i32::try_from(secs / 31_556_952).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn read_to_string(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let err = |source| CaError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(mode);
        let mut file = options.open(path).map_err(err)?;
        // `mode` applies only when the file is created; an existing key file is narrowed too.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path).map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ca_round_trips_through_files_and_keeps_its_certificate() {
        let dir = std::env::temp_dir().join(format!("tunnel-ca-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        let ca = DeploymentCa::generate().unwrap();
        ca.write_pem_files(&cert, &key).unwrap();

        let loaded = DeploymentCa::read_pem_files(&cert, &key).unwrap();

        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edge_cert_rejects_invalid_dns_name() {
        let ca = DeploymentCa::generate().unwrap();

        let err = ca.issue_edge_cert(&["bad name!".into()]).unwrap_err();

        assert!(matches!(err, CaError::InvalidDnsName(_)));
    }
}
