//! Authorization code + PKCE scenarios, and upstream login attempts.
#![allow(clippy::unwrap_used)]

use identity_core::authcode::{AuthCodes, AuthorizeError, AuthorizeRequest, RedeemError};
use identity_core::login::{LoginAttempts, LoginError, ReturnTo};
use identity_core::pkce::CodeVerifier;
use identity_core::UnixTime;

const T0: UnixTime = UnixTime(1_700_000_000);
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

fn request(verifier: &CodeVerifier) -> AuthorizeRequest {
    AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some("gatehouse".into()),
        redirect_uri: Some(REDIRECT.into()),
        state: Some("xyz".into()),
        code_challenge: Some(verifier.challenge().as_str().into()),
        code_challenge_method: Some("S256".into()),
        scope: None,
    }
}

#[test]
fn a_code_is_redeemed_once_with_the_right_verifier() {
    let verifier = CodeVerifier::from_random(&[9; 32]);
    let mut codes = AuthCodes::<&str>::default();
    let valid = codes.validate(&request(&verifier)).unwrap();
    assert_eq!(valid.state.as_deref(), Some("xyz"));
    let code = codes.issue(valid, "user-1", &[1; 32], T0).unwrap();
    assert_eq!(
        codes.redeem(&code, "gatehouse", REDIRECT, verifier.as_str(), T0.plus(59)),
        Ok("user-1")
    );
    assert_eq!(
        codes.redeem(&code, "gatehouse", REDIRECT, verifier.as_str(), T0.plus(59)),
        Err(RedeemError::InvalidGrant)
    );
}

#[test]
fn wrong_verifier_redirect_client_or_late_redemption_fail_and_burn_the_code() {
    let verifier = CodeVerifier::from_random(&[9; 32]);
    let other = CodeVerifier::from_random(&[8; 32]);
    let mut codes = AuthCodes::<()>::default();
    let cases: [(&str, &str, &str, UnixTime); 4] = [
        ("gatehouse", REDIRECT, other.as_str(), T0),
        (
            "gatehouse",
            "http://127.0.0.1:1/callback",
            verifier.as_str(),
            T0,
        ),
        ("someone", REDIRECT, verifier.as_str(), T0),
        ("gatehouse", REDIRECT, verifier.as_str(), T0.plus(60)),
    ];
    for (i, (client, redirect, v, now)) in cases.into_iter().enumerate() {
        let valid = codes.validate(&request(&verifier)).unwrap();
        let code = codes.issue(valid, (), &[i as u8; 32], T0).unwrap();
        assert_eq!(
            codes.redeem(&code, client, redirect, v, now),
            Err(RedeemError::InvalidGrant),
            "case {i}"
        );
        assert_eq!(
            codes.redeem(&code, "gatehouse", REDIRECT, verifier.as_str(), T0),
            Err(RedeemError::InvalidGrant),
            "case {i}: burnt"
        );
    }
    let valid = codes.validate(&request(&verifier)).unwrap();
    let code = codes.issue(valid, (), &[7; 32], T0).unwrap();
    assert_eq!(
        codes.redeem(&code, "gatehouse", REDIRECT, "short", T0),
        Err(RedeemError::InvalidRequest)
    );
}

#[test]
fn authorize_requests_are_validated_in_a_safe_order() {
    let verifier = CodeVerifier::from_random(&[9; 32]);
    let codes = AuthCodes::<()>::default();
    let with = |f: &dyn Fn(&mut AuthorizeRequest)| {
        let mut r = request(&verifier);
        f(&mut r);
        codes.validate(&r).unwrap_err()
    };
    let e = with(&|r| r.client_id = Some("evil".into()));
    assert_eq!(e, AuthorizeError::UnknownClient);
    assert!(!e.redirectable());
    let e = with(&|r| {
        r.redirect_uri = Some("http://localhost:53682/callback".into());
        r.response_type = None;
    });
    assert_eq!(
        e,
        AuthorizeError::InvalidRedirectUri,
        "redirect checked before the rest"
    );
    assert!(!e.redirectable());
    assert_eq!(
        with(&|r| r.response_type = Some("token".into())),
        AuthorizeError::UnsupportedResponseType
    );
    let e = with(&|r| r.code_challenge = None);
    assert_eq!(e, AuthorizeError::InvalidRequest);
    assert!(e.redirectable());
    assert_eq!(
        with(&|r| r.code_challenge_method = Some("plain".into())),
        AuthorizeError::InvalidRequest
    );
    let mut v6 = request(&verifier);
    v6.redirect_uri = Some("http://[::1]:9/cb".into());
    assert!(codes.validate(&v6).is_ok());
}

fn rand96(n: u8) -> [u8; 96] {
    let mut r = [0u8; 96];
    for (i, b) in r.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    r
}

#[test]
fn a_login_attempt_is_taken_once_within_ten_minutes() {
    let mut attempts = LoginAttempts::default();
    let ret = ReturnTo::parse("/device?user_code=BCDF-GHJK").unwrap();
    let start = attempts
        .create("okta", ret.clone(), &rand96(3), T0)
        .unwrap();
    assert_ne!(start.state, start.nonce);
    let attempt = attempts.take(&start.state, "okta", T0.plus(599)).unwrap();
    assert_eq!(attempt.return_to, ret);
    assert_eq!(attempt.nonce, start.nonce);
    assert!(start.challenge.verify(&attempt.verifier));
    assert_eq!(
        attempts
            .take(&start.state, "okta", T0.plus(599))
            .unwrap_err(),
        LoginError::UnknownState
    );

    let late = attempts
        .create("okta", ReturnTo::default(), &rand96(4), T0)
        .unwrap();
    assert_eq!(
        attempts
            .take(&late.state, "okta", T0.plus(600))
            .unwrap_err(),
        LoginError::Expired
    );

    let other = attempts
        .create("okta", ReturnTo::default(), &rand96(5), T0)
        .unwrap();
    assert_eq!(
        attempts.take(&other.state, "google", T0).unwrap_err(),
        LoginError::UnknownState
    );
    assert_eq!(
        attempts.take(&other.state, "okta", T0).unwrap_err(),
        LoginError::UnknownState
    );
    assert_eq!(
        attempts.take("made-up", "okta", T0).unwrap_err(),
        LoginError::UnknownState
    );
}

#[test]
fn login_attempts_are_bounded_and_purged() {
    let mut attempts = LoginAttempts::new(1);
    attempts
        .create("okta", ReturnTo::default(), &rand96(1), T0)
        .unwrap();
    assert_eq!(
        attempts
            .create("okta", ReturnTo::default(), &rand96(2), T0)
            .unwrap_err(),
        LoginError::TooManyAttempts
    );
    assert!(attempts
        .create("okta", ReturnTo::default(), &rand96(2), T0.plus(600))
        .is_ok());
    assert_eq!(attempts.len(), 1);
}
