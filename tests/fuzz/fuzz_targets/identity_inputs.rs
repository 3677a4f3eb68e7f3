//! The small parsers identity runs on request input, on arbitrary text: service-token bearer
//! secrets, device-grant user codes, `return_to` paths, PKCE verifiers and challenges, and
//! loopback redirect URIs. None may panic; what parses must survive its own round trip, and an
//! accepted `return_to` must never name another origin.

#![no_main]

use identity_core::authcode::is_loopback_redirect;
use identity_core::device::UserCode;
use identity_core::login::ReturnTo;
use identity_core::pkce::{CodeChallenge, CodeVerifier};
use identity_core::service_token::ServiceTokenSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(secret) = ServiceTokenSecret::parse(&text) {
        let again = ServiceTokenSecret::parse(&secret.expose()).expect("round trip");
        assert_eq!(again, secret);
        assert!(secret.hash().verify(&again));
    }
    if let Ok(code) = UserCode::parse(&text) {
        assert_eq!(UserCode::parse(&code.to_string()).as_ref(), Ok(&code));
    }
    if let Ok(path) = ReturnTo::parse(&text) {
        let p = path.as_str();
        assert!(p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'));
    }
    if let Ok(verifier) = CodeVerifier::parse(&text) {
        assert!(verifier.challenge().verify(&verifier));
    }
    if let Ok(challenge) = CodeChallenge::parse(&text, "S256") {
        assert_eq!(challenge.as_str(), text);
    }
    if is_loopback_redirect(&text) {
        assert!(text.starts_with("http://127.0.0.1") || text.starts_with("http://[::1]"));
    }
});
