//! Signing and verification through the public API, with explicit instants.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use identity_claims::{
    sign, verify, AppAssertion, Audience, CommonClaims, ConnectorCredential, DeviceSession,
    Expectation, Jwks, KeySet, SigningKey, TokenError, TokenKind, UnixTime, UserFacts, UserSession,
    CLOCK_SKEW_SECS,
};

const ISS: &str = "https://id.example";
const IAT: UnixTime = UnixTime(1_700_000_000);
const EXP: UnixTime = UnixTime(1_700_000_600);

fn key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

fn keys() -> KeySet {
    KeySet::from_jwks(&Jwks::from_signing_keys([&key()]))
}

fn expect(aud: &str) -> Expectation {
    Expectation {
        issuer: ISS.into(),
        audience: aud.into(),
    }
}

fn common(aud: &str) -> CommonClaims {
    CommonClaims {
        iss: ISS.into(),
        sub: "u1".into(),
        aud: Audience::one(aud),
        exp: EXP,
        iat: IAT,
        nbf: None,
        jti: "j1".into(),
    }
}

fn user() -> UserFacts {
    UserFacts {
        email: "ada@example.com".into(),
        groups: vec!["eng".into()],
        idp: "okta".into(),
        login_method: "pwd".into(),
        auth_time: IAT,
    }
}

fn session() -> UserSession {
    UserSession {
        common: common(ISS),
        sid: "s1".into(),
        user: user(),
    }
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn a_signed_user_session_verifies_and_round_trips() {
    let token = sign(&session(), &key());
    let got: UserSession = verify(&token, &keys(), &expect(ISS), IAT).unwrap();
    assert_eq!(got, session());
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key().kid());
}

#[test]
fn every_kind_round_trips() {
    let device = DeviceSession {
        common: common(ISS),
        sid: "s2".into(),
        device_id: "d1".into(),
        user: user(),
    };
    let t = sign(&device, &key());
    assert_eq!(
        verify::<DeviceSession>(&t, &keys(), &expect(ISS), IAT).unwrap(),
        device
    );

    let app = AppAssertion {
        common: common("wiki"),
        user: user(),
        device_id: None,
        posture: None,
    };
    let t = sign(&app, &key());
    assert_eq!(
        verify::<AppAssertion>(&t, &keys(), &expect("wiki"), IAT).unwrap(),
        app
    );

    let conn = ConnectorCredential {
        common: common("edges"),
        connector_id: "c1".into(),
        tunnel_id: "t1".into(),
    };
    let t = sign(&conn, &key());
    assert_eq!(
        verify::<ConnectorCredential>(&t, &keys(), &expect("edges"), IAT).unwrap(),
        conn
    );
}

#[test]
fn one_token_kind_cannot_pass_as_another() {
    // Same iss and aud, so only `kind` tells them apart.
    let app = AppAssertion {
        common: common(ISS),
        user: user(),
        device_id: Some("d1".into()),
        posture: None,
    };
    let token = sign(&app, &key());
    let err = verify::<UserSession>(&token, &keys(), &expect(ISS), IAT).unwrap_err();
    assert_eq!(
        err,
        TokenError::WrongKind {
            expected: TokenKind::UserSession,
            got: Some(TokenKind::AppAssertion)
        }
    );
    let user_token = sign(&session(), &key());
    assert!(matches!(
        verify::<DeviceSession>(&user_token, &keys(), &expect(ISS), IAT),
        Err(TokenError::WrongKind { .. })
    ));
}

#[test]
fn issuer_and_audience_are_checked() {
    let token = sign(&session(), &key());
    let wrong_iss = Expectation {
        issuer: "https://evil.example".into(),
        audience: ISS.into(),
    };
    assert_eq!(
        verify::<UserSession>(&token, &keys(), &wrong_iss, IAT),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        verify::<UserSession>(&token, &keys(), &expect("wiki"), IAT),
        Err(TokenError::WrongAudience)
    );
    let mut multi = session();
    multi.common.aud = Audience(vec!["a".into(), "wiki".into()]);
    let token = sign(&multi, &key());
    assert!(verify::<UserSession>(&token, &keys(), &expect("wiki"), IAT).is_ok());
}

#[test]
fn time_claims_are_checked_against_now() {
    let token = sign(&session(), &key());
    let ks = keys();
    let e = expect(ISS);
    assert!(verify::<UserSession>(&token, &ks, &e, UnixTime(EXP.0 - 1)).is_ok());
    assert_eq!(
        verify::<UserSession>(&token, &ks, &e, EXP),
        Err(TokenError::Expired { exp: EXP })
    );
    // iat within the skew is accepted, beyond it rejected.
    let before = UnixTime(IAT.0 - CLOCK_SKEW_SECS);
    assert!(verify::<UserSession>(&token, &ks, &e, before).is_ok());
    assert_eq!(
        verify::<UserSession>(&token, &ks, &e, UnixTime(before.0 - 1)),
        Err(TokenError::IssuedInFuture { iat: IAT })
    );
    let mut later = session();
    later.common.nbf = Some(UnixTime(IAT.0 + 300));
    let token = sign(&later, &key());
    assert_eq!(
        verify::<UserSession>(&token, &ks, &e, IAT),
        Err(TokenError::NotYetValid {
            nbf: UnixTime(IAT.0 + 300)
        })
    );
    assert!(verify::<UserSession>(&token, &ks, &e, UnixTime(IAT.0 + 240)).is_ok());
}

#[test]
fn unknown_or_missing_kid_and_foreign_keys_are_rejected() {
    let other = SigningKey::from_seed(&[7; 32]);
    let token = sign(&session(), &other);
    assert_eq!(
        verify::<UserSession>(&token, &keys(), &expect(ISS), IAT),
        Err(TokenError::UnknownKid(other.kid().to_owned()))
    );

    // A token claiming our kid but signed by another key.
    let good = sign(&session(), &key());
    let forged = sign(&session(), &other);
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = forged.split('.').nth(2).unwrap();
    assert_eq!(
        verify::<UserSession>(&parts.join("."), &keys(), &expect(ISS), IAT),
        Err(TokenError::BadSignature)
    );

    let payload = good.split('.').nth(1).unwrap();
    let sig = good.split('.').nth(2).unwrap();
    let no_kid = format!("{}.{payload}.{sig}", b64(r#"{"alg":"EdDSA"}"#));
    assert_eq!(
        verify::<UserSession>(&no_kid, &keys(), &expect(ISS), IAT),
        Err(TokenError::MissingKid)
    );
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let token = sign(&session(), &key());
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["groups"] = serde_json::json!(["admins"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload.to_string()), parts[2]);
    assert_eq!(
        verify::<UserSession>(&tampered, &keys(), &expect(ISS), IAT),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn other_algorithms_are_rejected_before_any_key_is_used() {
    let token = sign(&session(), &key());
    let payload = token.split('.').nth(1).unwrap();
    let kid = key().kid().to_owned();
    for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"] {
        let header = b64(&format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#));
        // `none` with an empty signature, and an HMAC "signature" made with the public key
        // bytes as the secret, are the classic confusions; any signature bytes do here since
        // the algorithm check comes first.
        for sig in ["", "AAAA", token.split('.').nth(2).unwrap()] {
            let forged = format!("{header}.{payload}.{sig}");
            assert_eq!(
                verify::<UserSession>(&forged, &keys(), &expect(ISS), IAT),
                Err(TokenError::UnsupportedAlgorithm(alg.to_owned())),
                "{alg}"
            );
        }
    }
    let crit = b64(&format!(
        r#"{{"alg":"EdDSA","kid":"{kid}","crit":["b64"],"b64":false}}"#
    ));
    assert_eq!(
        verify::<UserSession>(
            &format!("{crit}.{payload}.AAAA"),
            &keys(),
            &expect(ISS),
            IAT
        ),
        Err(TokenError::CriticalExtension)
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let token = sign(&session(), &key());
    let long = "a".repeat(20_000);
    let cases = [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        &token[..token.len() - 1],
        &long,
        "eyJhbGciOiJFZERTQSJ9.e30=.AAAA",
        "\u{0}.\u{ff}.é",
    ];
    for case in cases {
        let got = verify::<UserSession>(case, &keys(), &expect(ISS), IAT);
        assert!(got.is_err(), "{case:?} was accepted");
    }
    let padded = format!("{token}=");
    assert!(verify::<UserSession>(&padded, &keys(), &expect(ISS), IAT).is_err());
}

/// A claim set that says `user_session` but lacks `sid` and the user facts.
#[derive(serde::Serialize, serde::Deserialize)]
struct Truncated {
    #[serde(flatten)]
    common: CommonClaims,
}

impl identity_claims::Claims for Truncated {
    const KIND: TokenKind = TokenKind::UserSession;
    fn common(&self) -> &CommonClaims {
        &self.common
    }
}

#[test]
fn a_validly_signed_claim_set_of_the_wrong_shape_is_malformed() {
    let token = sign(
        &Truncated {
            common: common(ISS),
        },
        &key(),
    );
    assert_eq!(
        verify::<UserSession>(&token, &keys(), &expect(ISS), IAT),
        Err(TokenError::Malformed("claims do not fit"))
    );
}
