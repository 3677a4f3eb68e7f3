//! The clientless front's certificates: several PEM pairs, each picked by the ClientHello's SNI
//! name when its leaf certificate is valid for that name (webpki's subject-name check, so
//! wildcards and IP SANs mean what they mean to browsers). Without SNI, or when no
//! certificate names the host, the first pair is used and the browser shows the mismatch.

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// One certificate chain (leaf first) and its private key, as PEM text.
pub(crate) struct CertificatePem {
    /// Where it came from, for errors.
    pub(crate) label: String,
    pub(crate) chain: String,
    pub(crate) key: String,
}

/// TLS 1.2 and 1.3 with rustls's safe defaults, ALPN `http/1.1`, certificates by SNI.
///
/// # Errors
/// No certificate, or a pair that does not parse or whose key does not match.
pub(crate) fn server_config(pairs: &[CertificatePem]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::with_capacity(pairs.len());
    for pair in pairs {
        keys.push(Arc::new(
            certified_key(pair, &provider).with_context(|| pair.label.clone())?,
        ));
    }
    if keys.is_empty() {
        bail!("[clientless] needs at least one [[clientless.certificates]] entry");
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { keys }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

fn certified_key(
    pair: &CertificatePem,
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.chain.as_bytes())
        .collect::<Result<_, _>>()
        .context("invalid certificate PEM")?;
    if chain.is_empty() {
        bail!("no certificate in the certificate file");
    }
    let key =
        PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).context("invalid private key PEM")?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .context("the key does not match the certificate, or is of an unsupported type")?;
    Ok(certified)
}

#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
}

impl BySni {
    fn for_name(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = ServerName::try_from(name).ok()?;
        self.keys.iter().find(|key| {
            key.end_entity_cert().is_ok_and(|leaf| {
                webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        })
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.for_name(name))
            .or_else(|| self.keys.first())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> CertificatePem {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::generate_simple_self_signed(names).expect("cert");
        CertificatePem {
            label: "test".to_owned(),
            chain: cert.cert.pem(),
            key: cert.key_pair.serialize_pem(),
        }
    }

    #[test]
    fn the_certificate_naming_the_host_is_chosen_wildcards_included() {
        let provider = rustls::crypto::ring::default_provider();
        let keys = [pair(&["a.corp.test"]), pair(&["*.apps.corp.test"])]
            .iter()
            .map(|p| Arc::new(certified_key(p, &provider).expect("key")))
            .collect::<Vec<_>>();
        let resolver = BySni { keys: keys.clone() };
        let picked = |name: &str| resolver.for_name(name).map(|k| Arc::ptr_eq(k, &keys[1]));
        assert_eq!(picked("a.corp.test"), Some(false));
        assert_eq!(picked("wiki.apps.corp.test"), Some(true));
        assert_eq!(picked("other.test"), None);
    }

    #[test]
    fn bad_pairs_are_refused_with_the_cause() {
        let mut mismatched = pair(&["a.corp.test"]);
        mismatched.key = pair(&["b.corp.test"]).key;
        let error = server_config(&[mismatched]).expect_err("mismatch");
        assert!(format!("{error:#}").contains("does not match"), "{error:#}");
        assert!(server_config(&[]).is_err());
        let garbage = CertificatePem {
            label: "garbage".to_owned(),
            chain: "not pem".to_owned(),
            key: "not pem".to_owned(),
        };
        assert!(server_config(&[garbage]).is_err());
    }
}
