//! What the loopback QUIC tests share: an edge listener with a throwaway deployment CA and a
//! credential key from a fixed seed, credentials signed with it, and a time bound.

#![allow(dead_code, unreachable_pub)] // Each test binary uses its own part.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity_claims::claims::{Audience, CommonClaims};
use identity_claims::{ConnectorCredential, Jwks, KeySet, SigningKey, UnixTime};
use tunnel::ca::DeploymentCa;
use tunnel::config::{edge_server_config, EdgeLimits};
use tunnel::edge::{ListenerOptions, TunnelListener};
use tunnel::{JwtVerifier, EDGE_AUDIENCE};
use tunnel_proto::Credential;

pub const ISSUER: &str = "https://identity.test";
pub const EDGE_NAME: &str = "edge.test";
pub const LIMIT: Duration = Duration::from_secs(10);

/// A listener on 127.0.0.1 with a certificate for [`EDGE_NAME`] from a new CA, trusting
/// credentials signed by the returned key.
pub fn listener(options: ListenerOptions) -> (DeploymentCa, TunnelListener, SigningKey) {
    let ca = DeploymentCa::generate().expect("ca");
    let cert = ca
        .issue_edge_cert(&[EDGE_NAME.into(), "127.0.0.1".into()])
        .expect("edge cert");
    let server = edge_server_config(
        cert.cert_chain(),
        cert.private_key(),
        &EdgeLimits::default(),
    )
    .expect("server config");
    let key = SigningKey::from_seed(&[7; 32]);
    let verifier = JwtVerifier::new(ISSUER, KeySet::from_jwks(&Jwks::from_signing_keys([&key])));
    let listener = TunnelListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        server,
        Arc::new(verifier),
        options,
    )
    .expect("bind");
    (ca, listener, key)
}

/// A connector credential for `connector_id` on tunnel `t1`, valid for an hour.
pub fn credential(key: &SigningKey, connector_id: &str) -> Credential {
    let now = UnixTime::from_system_time(SystemTime::now());
    let claims = ConnectorCredential {
        common: CommonClaims {
            iss: ISSUER.into(),
            sub: connector_id.into(),
            aud: Audience::one(EDGE_AUDIENCE),
            exp: now.plus(3600),
            iat: now,
            nbf: None,
            jti: "jti-1".into(),
        },
        connector_id: connector_id.into(),
        tunnel_id: "t1".into(),
    };
    Credential(identity_claims::sign(&claims, key))
}

/// `f`, or a panic after [`LIMIT`].
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}
