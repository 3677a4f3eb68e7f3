use super::*;
use identity_claims::{Audience, CommonClaims, SigningKey, UserFacts};

const ISSUER: &str = "https://id.example.com";
const APP: &str = "wiki";
const NOW: UnixTime = UnixTime(1_767_600_000);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn claims(iss: &str, aud: &str, exp: UnixTime) -> AppAssertion {
    AppAssertion {
        common: CommonClaims {
            iss: iss.to_owned(),
            sub: "usr_1".to_owned(),
            aud: Audience::one(aud),
            exp,
            iat: NOW,
            nbf: None,
            jti: "jti_1".to_owned(),
        },
        user: UserFacts {
            email: "alice@example.com".to_owned(),
            groups: vec!["eng".to_owned(), "admins".to_owned()],
            idp: "local".to_owned(),
            login_method: "pwd".to_owned(),
            auth_time: UnixTime(NOW.0 - 600),
        },
        device_id: Some("dev_1".to_owned()),
        posture: Some(Posture {
            os: "linux".to_owned(),
            os_version: "6.1".to_owned(),
            hostname: "laptop".to_owned(),
            client_version: "0.1.0".to_owned(),
        }),
    }
}

fn token(key: &SigningKey, iss: &str, aud: &str) -> String {
    identity_claims::sign(&claims(iss, aud, NOW.plus(300)), key)
}

fn verifier(keys: &[&SigningKey]) -> Verifier {
    let v = Verifier::new(ISSUER, APP);
    v.set_jwks(&Jwks::from_signing_keys(keys.iter().copied()));
    v
}

#[test]
fn a_valid_assertion_yields_the_user_device_and_login_facts() {
    let k = key(1);
    let v = verifier(&[&k]);
    let a = v
        .verify(&format!(" {}\r\n", token(&k, ISSUER, APP)), NOW)
        .unwrap();
    assert_eq!(a.user_id, "usr_1");
    assert_eq!(a.email, "alice@example.com");
    assert!(a.in_group("eng") && !a.in_group("ops"));
    assert_eq!(a.idp, "local");
    assert_eq!(a.login_method, "pwd");
    assert_eq!(a.auth_time, UnixTime(NOW.0 - 600));
    assert_eq!(a.device_id.as_deref(), Some("dev_1"));
    assert_eq!(a.posture.unwrap().os, "linux");
    assert_eq!(a.application, APP);
    assert_eq!(a.expires_at, NOW.plus(300));
    assert_eq!(a.token_id, "jti_1");
}

#[test]
fn another_applications_assertion_is_rejected() {
    let k = key(1);
    let err = verifier(&[&k])
        .verify(&token(&k, ISSUER, "payroll"), NOW)
        .unwrap_err();
    assert_eq!(err, VerifyError::Invalid(TokenError::WrongAudience));
}

#[test]
fn another_issuers_assertion_is_rejected() {
    let k = key(1);
    let err = verifier(&[&k])
        .verify(&token(&k, "https://evil.example.com", APP), NOW)
        .unwrap_err();
    assert_eq!(err, VerifyError::Invalid(TokenError::WrongIssuer));
}

#[test]
fn an_expired_assertion_is_rejected_at_its_exp() {
    let k = key(1);
    let v = verifier(&[&k]);
    let t = token(&k, ISSUER, APP);
    assert!(v.verify(&t, NOW.plus(299)).is_ok());
    assert_eq!(
        v.verify(&t, NOW.plus(300)).unwrap_err(),
        VerifyError::Invalid(TokenError::Expired { exp: NOW.plus(300) })
    );
}

#[test]
fn a_tampered_or_foreign_signature_is_rejected() {
    let k = key(1);
    let v = verifier(&[&k]);
    let t = token(&k, ISSUER, APP);
    // Another payload under the original signature.
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let other = token(&k, ISSUER, "other");
    parts[1] = other.split('.').nth(1).unwrap().to_owned();
    assert_eq!(
        v.verify(&parts.join("."), NOW).unwrap_err(),
        VerifyError::Invalid(TokenError::BadSignature)
    );
    // A forger's key presenting the trusted key's id.
    let forged = token(&key(2), ISSUER, APP);
    let forged_sig = forged.rsplit('.').next().unwrap();
    let (signed, _) = t.rsplit_once('.').unwrap();
    assert_eq!(
        v.verify(&format!("{signed}.{forged_sig}"), NOW)
            .unwrap_err(),
        VerifyError::Invalid(TokenError::BadSignature)
    );
}

#[test]
fn other_token_kinds_and_garbage_are_rejected_without_panicking() {
    let k = key(1);
    let v = verifier(&[&k]);
    let credential = identity_claims::ConnectorCredential {
        common: claims(ISSUER, APP, NOW.plus(300)).common,
        connector_id: "c".into(),
        tunnel_id: "t".into(),
    };
    let err = v
        .verify(&identity_claims::sign(&credential, &k), NOW)
        .unwrap_err();
    assert!(matches!(
        err,
        VerifyError::Invalid(TokenError::WrongKind { .. })
    ));
    assert_eq!(v.verify("  ", NOW).unwrap_err(), VerifyError::Missing);
    for junk in ["x", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "...."] {
        assert!(matches!(v.verify(junk, NOW), Err(VerifyError::Invalid(_))));
    }
}

#[test]
fn an_unknown_kid_asks_for_one_refresh_and_verifies_after_the_new_jwks() {
    let (old, new) = (key(1), key(2));
    let v = verifier(&[&old]);
    let t = token(&new, ISSUER, APP);

    let err = v.verify(&t, NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: new.kid().to_owned()
        }
    );
    assert!(v.refresh_due(&err, NOW), "the first unknown kid refreshes");
    assert!(
        !v.refresh_due(&err, NOW.plus(MIN_REFRESH_INTERVAL_SECS - 1)),
        "not again within the interval"
    );
    assert!(!v.refresh_due(&VerifyError::Missing, NOW.plus(1000)));

    // Identity's JWKS during a rotation lists both keys.
    let rotated = serde_json::to_string(&Jwks::from_signing_keys([&new, &old])).unwrap();
    v.set_jwks_json(&rotated).unwrap();
    assert_eq!(v.key_count(), 2);
    assert_eq!(v.verify(&t, NOW).unwrap().email, "alice@example.com");
    assert!(v.verify(&token(&old, ISSUER, APP), NOW).is_ok());
    assert!(v.refresh_due(&err, NOW.plus(MIN_REFRESH_INTERVAL_SECS)));
}

#[test]
fn a_jwks_without_usable_keys_keeps_the_trusted_ones() {
    let k = key(1);
    let v = verifier(&[&k]);
    assert!(matches!(
        v.set_jwks_json(r#"{"keys":[{"kty":"RSA","n":"0vx7","e":"AQAB","kid":"r"}]}"#),
        Err(JwksError::NoUsableKey)
    ));
    assert!(matches!(v.set_jwks_json("42"), Err(JwksError::Invalid(_))));
    assert_eq!(v.key_count(), 1);
    assert!(Verifier::from_jwks_json(ISSUER, APP, "{}").is_err());
    assert_eq!(v.jwks_url(), "https://id.example.com/.well-known/jwks.json");
}

#[cfg(feature = "fetch")]
mod fetch {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves `body` as the JWKS to every request; returns the JWKS URL.
    async fn serve_jwks(body: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}{JWKS_PATH}")
    }

    #[tokio::test]
    async fn verify_or_refresh_fetches_the_rotated_jwks_on_an_unknown_kid() {
        let (old, new) = (key(1), key(2));
        let url =
            serve_jwks(serde_json::to_string(&Jwks::from_signing_keys([&new, &old])).unwrap())
                .await;
        let v = verifier(&[&old]);
        let a = v
            .verify_or_refresh(&token(&new, ISSUER, APP), &url, NOW)
            .await
            .unwrap();
        assert_eq!(a.device_id.as_deref(), Some("dev_1"));
        assert_eq!(v.key_count(), 2);

        // A made-up kid right after: no second download within the interval.
        let stranger = token(&key(3), ISSUER, APP);
        let err = v
            .verify_or_refresh(&stranger, "http://127.0.0.1:9/unreachable", NOW.plus(1))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::UnknownKey { .. }));
    }
}
