//! `identity_claims::verify` on arbitrary text never panics and never accepts: the input is
//! checked against a JWKS whose private key signs nothing here, for every token kind. Inputs
//! that start with `S` are instead treated as claims to sign with the trusted key, and that
//! token must verify (and flipping any byte of it must not).

#![no_main]

use identity_claims::{
    sign, verify, AppAssertion, Audience, CommonClaims, ConnectorCredential, DeviceSession,
    Expectation, Jwks, KeySet, SigningKey, UnixTime, UserFacts, UserSession,
};
use libfuzzer_sys::fuzz_target;

const NOW: UnixTime = UnixTime(1_700_000_000);

fuzz_target!(|data: &[u8]| {
    let trusted = SigningKey::from_seed(&[0x11; 32]);
    let keys = KeySet::from_jwks(&Jwks::from_signing_keys([&trusted]));
    let expect = Expectation {
        issuer: "https://id.example".into(),
        audience: "https://id.example".into(),
    };
    let text = String::from_utf8_lossy(data);

    if let Some(rest) = data.strip_prefix(b"S") {
        let jti = String::from_utf8_lossy(rest).into_owned();
        let claims = UserSession {
            common: CommonClaims {
                iss: expect.issuer.clone(),
                sub: jti.clone(),
                aud: Audience::one(expect.audience.clone()),
                exp: NOW.plus(60),
                iat: NOW,
                nbf: None,
                jti,
            },
            sid: "s".into(),
            user: UserFacts::default(),
        };
        let token = sign(&claims, &trusted);
        if token.len() <= identity_claims::jws::MAX_TOKEN_LEN {
            assert_eq!(verify::<UserSession>(&token, &keys, &expect, NOW).as_ref(), Ok(&claims));
            let mut bytes = token.into_bytes();
            let i = rest.len() % bytes.len();
            bytes[i] ^= 1;
            if let Ok(flipped) = String::from_utf8(bytes) {
                assert!(verify::<UserSession>(&flipped, &keys, &expect, NOW).is_err());
            }
        }
        return;
    }

    // Nothing signed with `trusted` reaches this path, so nothing may verify.
    assert!(verify::<UserSession>(&text, &keys, &expect, NOW).is_err());
    assert!(verify::<DeviceSession>(&text, &keys, &expect, NOW).is_err());
    assert!(verify::<AppAssertion>(&text, &keys, &expect, NOW).is_err());
    assert!(verify::<ConnectorCredential>(&text, &keys, &expect, NOW).is_err());
});
