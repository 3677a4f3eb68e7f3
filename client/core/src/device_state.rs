//! A logged-in device: the `device.json` that `gatehouse login` writes and `gatehouse connect`
//! refreshes, what identity's `GET /v1/profile` answer means for it, and the display facts its
//! device token carries.
//!
//! The file is persisted state: it carries a `version` ([`STATE_VERSION`]); fields added since
//! version 1 are optional, so every file written so far still reads. Nothing here does IO: the
//! `client` driver reads and writes the file and sends the request.

use crate::enroll::{DeviceToken, Posture, Profile};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The layout version of `device.json` this client writes and reads.
pub const STATE_VERSION: u32 = 1;

/// `device.json`. `Debug` redacts the device token (see [`DeviceToken`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// [`STATE_VERSION`] when written by this client.
    pub version: u32,
    /// identity's base URL, as given to `gatehouse login --identity`.
    pub identity: String,
    /// The device's id at identity.
    pub device_id: String,
    /// The device's bearer token for `GET /v1/profile` (secret).
    pub device_token: DeviceToken,
    /// The device's WireGuard public key, base64 (the private key is in `gatehouse.conf`).
    pub public_key: String,
    /// The profile of the last successful enrollment or refresh.
    #[serde(default)]
    pub profile: Profile,
    /// The edge chosen with `--edge` (login or connect); `None` means the profile's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// The posture reported at enrollment: what identity and the policy see of this device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
    /// When the device enrolled, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<u64>,
    /// When `profile` was last fetched from identity, unix seconds (`None`: at enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_updated_at: Option<u64>,
}

/// Why `device.json` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not JSON, or a required field is missing or mistyped.
    #[error("not a device state file")]
    Invalid(#[source] serde_json::Error),
    /// Written by a newer client with a layout this one does not know.
    #[error(
        "layout version {found} is newer than this client's ({STATE_VERSION}): upgrade gatehouse"
    )]
    UnsupportedVersion {
        /// The file's `version`.
        found: u32,
    },
}

/// What the answer to `GET /v1/profile` means for `gatehouse connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileAnswer {
    /// 2xx with a profile: use it and save it.
    Fresh(Profile),
    /// 401, 403 or 404: the device was revoked, its user disabled, or its token expired. The
    /// user has to log in again; the saved profile must not be used.
    Refused,
    /// Anything else (5xx, a body that is not a profile): identity is not usable right now.
    Unavailable(String),
}

/// What the device token says about the login, for display only: the payload is read without
/// verifying the signature, so nothing here may decide anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// The user's e-mail address.
    pub email: Option<String>,
    /// How the user authenticated (`pwd`, `otp`, …).
    pub login_method: Option<String>,
    /// When the user authenticated at the provider, unix seconds.
    pub auth_time: Option<u64>,
    /// When the device token expires, unix seconds.
    pub expires_at: Option<u64>,
}

impl DeviceState {
    /// Reads `device.json`; unknown fields are ignored (a newer client may add some).
    ///
    /// # Errors
    /// [`StateError`]: not a state file, or a newer layout version.
    pub fn parse(bytes: &[u8]) -> Result<Self, StateError> {
        let state: Self = serde_json::from_slice(bytes).map_err(StateError::Invalid)?;
        if state.version > STATE_VERSION {
            return Err(StateError::UnsupportedVersion {
                found: state.version,
            });
        }
        Ok(state)
    }

    /// The file's bytes: pretty JSON and a final newline. Contains the device token.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and lists into a Vec cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The display facts of the device token (see [`TokenFacts`]).
    pub fn token_facts(&self) -> TokenFacts {
        token_facts(&self.device_token)
    }
}

/// Classifies identity's answer to `GET /v1/profile` by HTTP status and body.
pub fn profile_answer(status: u16, body: &[u8]) -> ProfileAnswer {
    match status {
        200..=299 => match serde_json::from_slice::<Profile>(body) {
            Ok(profile) => ProfileAnswer::Fresh(profile),
            Err(_) => ProfileAnswer::Unavailable("identity's answer is not a profile".to_owned()),
        },
        401 | 403 | 404 => ProfileAnswer::Refused,
        other => ProfileAnswer::Unavailable(format!("identity answered HTTP {other}")),
    }
}

/// Reads the claims of a JWT's payload without verifying it; missing or unreadable claims are
/// `None`, and a token that is not a JWT has no facts.
pub fn token_facts(token: &DeviceToken) -> TokenFacts {
    #[derive(Deserialize)]
    struct Claims {
        email: Option<String>,
        login_method: Option<String>,
        auth_time: Option<u64>,
        exp: Option<u64>,
    }
    let Some(payload) = token.expose().split('.').nth(1) else {
        return TokenFacts::default();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return TokenFacts::default();
    };
    match serde_json::from_slice::<Claims>(&bytes) {
        Ok(claims) => TokenFacts {
            email: claims.email.filter(|e| !e.is_empty()),
            login_method: claims.login_method.filter(|m| !m.is_empty()),
            auth_time: claims.auth_time,
            expires_at: claims.exp,
        },
        Err(_) => TokenFacts::default(),
    }
}
