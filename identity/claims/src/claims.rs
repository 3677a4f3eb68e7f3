//! Token payloads identity issues (JWT claim sets, RFC 7519 §4).
//!
//! Every payload carries the registered claims ([`CommonClaims`]) and a private `kind` claim
//! naming its [`TokenKind`]; [`crate::verify`] checks `kind`, so a user-session token cannot be
//! presented where an application assertion or a connector credential is expected. Parsing is
//! lenient: unknown claims are ignored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::UnixTime;

/// What a token is for; the value of its `kind` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A user logged in (CLI, desktop, browser): [`UserSession`].
    UserSession,
    /// An enrolled device: [`DeviceSession`].
    DeviceSession,
    /// An edge vouching for a user to an origin: [`AppAssertion`].
    AppAssertion,
    /// A connector's tunnel credential: [`ConnectorCredential`].
    ConnectorCredential,
    /// A browser's clientless access to one application host: [`AccessSession`].
    AccessSession,
}

impl TokenKind {
    /// The `kind` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserSession => "user_session",
            Self::DeviceSession => "device_session",
            Self::AppAssertion => "app_assertion",
            Self::ConnectorCredential => "connector_credential",
            Self::AccessSession => "access_session",
        }
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claim set [`crate::sign`] and [`crate::verify`] handle.
pub trait Claims: Serialize + DeserializeOwned {
    /// The `kind` claim this type is signed with and required to carry.
    const KIND: TokenKind;

    /// The registered claims.
    fn common(&self) -> &CommonClaims;
}

/// The registered claims every token carries (RFC 7519 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommonClaims {
    /// Issuer: identity's `public_url`.
    pub iss: String,
    /// Subject: the user id, or the connector id for connector credentials.
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Expiry: the token is invalid at and after this instant.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// Unique token id (for revocation and replay logs).
    pub jti: String,
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3). Serialized as a plain
/// string when it holds exactly one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// A single audience.
    pub fn one(aud: impl Into<String>) -> Self {
        Self(vec![aud.into()])
    }

    /// Whether `aud` is among the values.
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => Self(vec![a]),
            OneOrMany::Many(a) => Self(a),
        })
    }
}

/// Who the user is and how they logged in; shared by user, device and application tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserFacts {
    /// E-mail address from the identity provider.
    pub email: String,
    /// Group names (from the provider's configured groups claim, plus identity's own groups).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The identity provider id the user logged in with.
    pub idp: String,
    /// How the user authenticated (e.g. `pwd`, `otp`, `hwk`, the RFC 8176 `amr` values), as
    /// the policy's login-method selector sees it.
    #[serde(default)]
    pub login_method: String,
    /// When the user authenticated at the provider.
    pub auth_time: UnixTime,
}

/// Device posture facts the client reports at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Posture {
    /// Operating system, e.g. `linux`, `macos`, `windows`.
    #[serde(default)]
    pub os: String,
    /// OS version, e.g. `6.1`.
    #[serde(default)]
    pub os_version: String,
    /// Host name.
    #[serde(default)]
    pub hostname: String,
    /// Gatehouse client version, e.g. `0.1.0`.
    #[serde(default)]
    pub client_version: String,
}

/// A user's login session (`kind: user_session`): the CLI's access token, `aud` = identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    /// Registered claims; `sub` is the user id.
    #[serde(flatten)]
    pub common: CommonClaims,
    /// Session id (revocable).
    pub sid: String,
    /// The user.
    #[serde(flatten)]
    pub user: UserFacts,
}

/// An enrolled device's session (`kind: device_session`), `aud` = identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSession {
    /// Registered claims; `sub` is the user id.
    #[serde(flatten)]
    pub common: CommonClaims,
    /// Session id (revocable).
    pub sid: String,
    /// The device.
    pub device_id: String,
    /// The user the device is enrolled for.
    #[serde(flatten)]
    pub user: UserFacts,
}

/// An edge's assertion to an origin about the requester (`kind: app_assertion`);
/// `aud` = the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppAssertion {
    /// Registered claims; `sub` is the user id.
    #[serde(flatten)]
    pub common: CommonClaims,
    /// The user.
    #[serde(flatten)]
    pub user: UserFacts,
    /// The device the request came from; `None` for clientless (browser) access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The device's posture, when there is a device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
}

/// A connector's tunnel credential (`kind: connector_credential`); `sub` = connector id,
/// `aud` = the edges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorCredential {
    /// Registered claims.
    #[serde(flatten)]
    pub common: CommonClaims,
    /// The connector.
    pub connector_id: String,
    /// The tunnel this credential opens.
    pub tunnel_id: String,
}

/// Prefix of an [`AccessSession`]'s audience; the rest is the application's hostname.
pub const ACCESS_AUDIENCE_PREFIX: &str = "gatehouse-access:";

/// The `aud` of access sessions for `hostname`: [`ACCESS_AUDIENCE_PREFIX`] and the hostname,
/// lowercase. The caller passes the hostname without a port: one token serves every port of
/// the host, as a browser cookie does.
pub fn access_audience(hostname: &str) -> String {
    format!("{ACCESS_AUDIENCE_PREFIX}{}", hostname.to_ascii_lowercase())
}

/// A browser's clientless access to one application host (`kind: access_session`);
/// `aud` = [`access_audience`] of the host. Identity hands it to the edge in the redirect to
/// `https://<host>/.gatehouse/callback`; the edge turns it into its own cookie for that host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSession {
    /// Registered claims; `sub` is the user id.
    #[serde(flatten)]
    pub common: CommonClaims,
    /// The identity browser session it was issued from (revocable: a revoked `sid` in the
    /// feed ends every access session of it).
    pub sid: String,
    /// The user.
    #[serde(flatten)]
    pub user: UserFacts,
    /// The edge's nonce from its redirect to identity, echoed so the edge can bind the token
    /// to the browser that started the login.
    pub nonce: String,
}

macro_rules! impl_claims {
    ($ty:ty, $kind:expr) => {
        impl Claims for $ty {
            const KIND: TokenKind = $kind;
            fn common(&self) -> &CommonClaims {
                &self.common
            }
        }
    };
}

impl_claims!(UserSession, TokenKind::UserSession);
impl_claims!(DeviceSession, TokenKind::DeviceSession);
impl_claims!(AppAssertion, TokenKind::AppAssertion);
impl_claims!(ConnectorCredential, TokenKind::ConnectorCredential);
impl_claims!(AccessSession, TokenKind::AccessSession);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_accepts_string_or_array_and_writes_one_as_string() {
        let one: Audience = serde_json::from_str(r#""app""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(one.contains("app"));
        assert!(many.contains("b") && !many.contains("c"));
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""app""#);
        assert_eq!(serde_json::to_string(&many).unwrap(), r#"["a","b"]"#);
    }

    #[test]
    fn app_assertion_parses_literal_json_ignoring_unknown_claims() {
        let json = r#"{"iss":"https://id.example","sub":"u1","aud":"wiki","exp":200,"iat":100,
            "jti":"j1","kind":"app_assertion","email":"a@example.com","groups":["eng"],
            "idp":"okta","auth_time":90,"device_id":"d1",
            "posture":{"os":"linux","os_version":"6.1","hostname":"h","client_version":"0.1.0","x":1},
            "future_claim":{"nested":true}}"#;
        let a: AppAssertion = serde_json::from_str(json).unwrap();
        assert_eq!(a.common.sub, "u1");
        assert_eq!(a.common.nbf, None);
        assert_eq!(a.user.groups, ["eng"]);
        assert_eq!(a.user.login_method, "");
        assert_eq!(a.device_id.as_deref(), Some("d1"));
        assert_eq!(a.posture.unwrap().os_version, "6.1");
    }

    #[test]
    fn access_session_parses_literal_json_and_its_audience_is_the_lowercase_host() {
        let json = r#"{"iss":"https://id.example","sub":"u1","aud":"gatehouse-access:app.example.com",
            "exp":200,"iat":100,"jti":"j1","kind":"access_session","sid":"ses_1",
            "email":"a@example.com","groups":["eng"],"idp":"okta","login_method":"pwd",
            "auth_time":90,"nonce":"n0nce-0123456789ab","extra":1}"#;
        let a: AccessSession = serde_json::from_str(json).unwrap();
        assert_eq!(a.sid, "ses_1");
        assert_eq!(a.nonce, "n0nce-0123456789ab");
        assert_eq!(a.user.email, "a@example.com");
        assert!(a.common.aud.contains(&access_audience("App.Example.COM")));
        assert_eq!(
            access_audience("app.example.com"),
            "gatehouse-access:app.example.com"
        );
        assert_eq!(TokenKind::AccessSession.as_str(), "access_session");
    }
}
