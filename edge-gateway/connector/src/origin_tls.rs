//! TLS clients for `https://` and `unix+tls:` origins: Mozilla's roots plus the rule's `caPool`,
//! TLS 1.3 and 1.2 over ring, ALPN `http/1.1`; or, with `noTLSVerify`, any certificate (the
//! handshake's signatures are still checked, so the session keys are the peer's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a TLS client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The `caPool` file could not be read or holds a malformed certificate.
    #[error("failed to read caPool {}", path.display())]
    CaPool {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The `caPool` file holds no usable certificate.
    #[error("caPool {} holds no usable CA certificate", path.display())]
    EmptyCaPool {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the protocol versions (cannot happen with ring's provider).
    #[error("failed to set up TLS")]
    Rustls(#[source] rustls::Error),
}

/// A client configuration trusting Mozilla's roots and `ca_pool`, or anything with
/// `insecure_no_tls_verify` (logged at WARN each time one is built).
///
/// # Errors
/// See [`TlsConfigError`].
pub fn client_config(
    ca_pool: Option<&Path>,
    insecure_no_tls_verify: bool,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsConfigError::Rustls)?;
    let mut config = if insecure_no_tls_verify {
        tracing::warn!(
            "noTLSVerify is set: origin TLS certificates are NOT verified; anyone on the path \
             to the origin can read and change its traffic"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_pool {
            add_ca_pool(&mut roots, path)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn add_ca_pool(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsConfigError> {
    let read_error = |source| TlsConfigError::CaPool {
        path: path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(TlsConfigError::EmptyCaPool {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// `noTLSVerify`: every certificate is accepted; handshake signatures are still verified.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
