//! The OAuth 2.0 device authorization grant (RFC 8628) as a state machine over `now`.
//!
//! [`DeviceFlow::start`] answers the device authorization request; the user enters the
//! [`UserCode`] in a browser, where [`DeviceFlow::approve`] or [`DeviceFlow::deny`] decides it;
//! the device meanwhile calls [`DeviceFlow::poll`] and gets the grant payload `G` exactly once.
//! [`DeviceFlow::purge`] drops expired entries; [`DeviceFlow::poll_timeout`] says when next.

use std::collections::BTreeMap;

use crate::UnixTime;

/// The user-code alphabet: consonants without vowels (no words) and without easily confused
/// characters (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// User-code length: 20^8 ≈ 2^34.6 codes (RFC 8628 §6.1's example).
pub const USER_CODE_LEN: usize = 8;
/// Default lifetime of a device code (RFC 8628 §3.2 `expires_in`).
pub const DEFAULT_EXPIRES_IN_SECS: u64 = 600;
/// Default minimum polling interval (RFC 8628 §3.2 `interval`, default 5 s).
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// How much `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

/// Limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlowConfig {
    /// Lifetime of a device/user code pair, seconds. Default 600.
    pub expires_in: u64,
    /// Initial polling interval, seconds. Default 5.
    pub interval: u64,
    /// Most outstanding (unexpired, unredeemed) authorizations. Default 10,000.
    pub max_outstanding: usize,
}

impl Default for DeviceFlowConfig {
    fn default() -> Self {
        Self {
            expires_in: DEFAULT_EXPIRES_IN_SECS,
            interval: DEFAULT_INTERVAL_SECS,
            max_outstanding: 10_000,
        }
    }
}

/// A normalised user code: 8 characters of [`USER_CODE_ALPHABET`]. Displays as `XXXX-XXXX`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// Normalises what a user typed (RFC 8628 §6.1): case-insensitive, dashes and whitespace
    /// ignored.
    ///
    /// # Errors
    /// [`DeviceError::InvalidUserCode`] when what remains is not 8 alphabet characters.
    pub fn parse(input: &str) -> Result<Self, DeviceError> {
        let code: String = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let ok =
            code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        if ok {
            Ok(Self(code))
        } else {
            Err(DeviceError::InvalidUserCode)
        }
    }

    /// The 8 characters without the dash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Draws a code from `random` by rejection sampling (bytes ≥ 240 are skipped so each
    /// character is uniform). `None` if fewer than 8 bytes were usable (p < 2^-70 for 32 bytes).
    fn from_random(random: &[u8]) -> Option<Self> {
        let n = USER_CODE_ALPHABET.len() as u8;
        let limit = 256 / u16::from(n) * u16::from(n);
        let code: String = random
            .iter()
            .filter(|b| u16::from(**b) < limit)
            .take(USER_CODE_LEN)
            .map(|b| char::from(USER_CODE_ALPHABET[usize::from(b % n)]))
            .collect();
        (code.len() == USER_CODE_LEN).then_some(Self(code))
    }
}

impl std::fmt::Display for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        write!(f, "{a}-{b}")
    }
}

/// The answer to a device authorization request (RFC 8628 §3.2); the driver adds
/// `verification_uri` and `verification_uri_complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device code (256 bits, base64url).
    pub device_code: String,
    /// The user code.
    pub user_code: UserCode,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

/// A pending request, as the approval page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The client that asked.
    pub client_id: String,
    /// The scope it asked for.
    pub scope: Option<String>,
    /// When the codes expire.
    pub expires_at: UnixTime,
}

/// Errors of start, approve and deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not a well-formed user code.
    #[error("invalid user code")]
    InvalidUserCode,
    /// No pending request has this user code (never existed, expired or purged).
    #[error("unknown user code")]
    UnknownUserCode,
    /// The request was already approved or denied.
    #[error("request already decided")]
    AlreadyDecided,
    /// The request expired.
    #[error("request expired")]
    Expired,
    /// Too many outstanding requests.
    #[error("too many outstanding device authorizations")]
    TooManyOutstanding,
    /// The random bytes gave a user code already in use, or too few usable bytes: draw new
    /// bytes and call again.
    #[error("user code collision")]
    Collision,
}

/// Token endpoint errors for the device code grant (RFC 8628 §3.5, RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The user has not decided yet.
    #[error("authorization_pending")]
    AuthorizationPending,
    /// Polling faster than the interval; the interval grew by 5 s.
    #[error("slow_down")]
    SlowDown,
    /// The device code expired.
    #[error("expired_token")]
    ExpiredToken,
    /// The user denied the request.
    #[error("access_denied")]
    AccessDenied,
    /// Unknown or already redeemed device code, or a code issued to another client.
    #[error("invalid_grant")]
    InvalidGrant,
}

impl PollError {
    /// The `error` value of the JSON error response.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
            Self::InvalidGrant => "invalid_grant",
        }
    }
}

#[derive(Debug, Clone)]
enum Decision<G> {
    Pending,
    Approved(G),
    Denied,
}

#[derive(Debug, Clone)]
struct Entry<G> {
    client_id: String,
    scope: Option<String>,
    user_code: UserCode,
    expires_at: UnixTime,
    interval: u64,
    last_poll: Option<UnixTime>,
    decision: Decision<G>,
}

/// Outstanding device authorizations. `G` is what approval grants (e.g. the user and session
/// to issue the token for); the driver owns its meaning.
#[derive(Debug, Clone)]
pub struct DeviceFlow<G> {
    config: DeviceFlowConfig,
    by_device_code: BTreeMap<String, Entry<G>>,
    by_user_code: BTreeMap<UserCode, String>,
}

impl<G> DeviceFlow<G> {
    /// An empty flow.
    pub fn new(config: DeviceFlowConfig) -> Self {
        Self {
            config,
            by_device_code: BTreeMap::new(),
            by_user_code: BTreeMap::new(),
        }
    }

    /// Starts an authorization for `client_id` (the driver checks the client is known).
    /// `random`: 64 fresh CSPRNG bytes (32 for the device code, 32 for the user code).
    ///
    /// # Errors
    /// [`DeviceError::TooManyOutstanding`]; [`DeviceError::Collision`] (retry with new bytes).
    pub fn start(
        &mut self,
        client_id: &str,
        scope: Option<&str>,
        random: &[u8; 64],
        now: UnixTime,
    ) -> Result<DeviceAuthorization, DeviceError> {
        self.purge(now);
        if self.by_device_code.len() >= self.config.max_outstanding {
            return Err(DeviceError::TooManyOutstanding);
        }
        let (dc, uc) = random.split_at(32);
        let device_code = crate::b64url(dc);
        let user_code = UserCode::from_random(uc).ok_or(DeviceError::Collision)?;
        if self.by_user_code.contains_key(&user_code)
            || self.by_device_code.contains_key(&device_code)
        {
            return Err(DeviceError::Collision);
        }
        let entry = Entry {
            client_id: client_id.to_owned(),
            scope: scope.map(str::to_owned),
            user_code: user_code.clone(),
            expires_at: now.plus(self.config.expires_in),
            interval: self.config.interval,
            last_poll: None,
            decision: Decision::Pending,
        };
        self.by_user_code
            .insert(user_code.clone(), device_code.clone());
        self.by_device_code.insert(device_code.clone(), entry);
        Ok(DeviceAuthorization {
            device_code,
            user_code,
            expires_in: self.config.expires_in,
            interval: self.config.interval,
        })
    }

    /// The pending request for a user code, for the approval page.
    ///
    /// # Errors
    /// Unknown, expired or already decided.
    pub fn pending(
        &self,
        user_code: &UserCode,
        now: UnixTime,
    ) -> Result<PendingRequest, DeviceError> {
        let entry = self.decidable(user_code, now)?;
        Ok(PendingRequest {
            client_id: entry.client_id.clone(),
            scope: entry.scope.clone(),
            expires_at: entry.expires_at,
        })
    }

    /// The user approved: the next poll returns `grant`.
    ///
    /// # Errors
    /// Unknown, expired or already decided.
    pub fn approve(
        &mut self,
        user_code: &UserCode,
        grant: G,
        now: UnixTime,
    ) -> Result<(), DeviceError> {
        self.decide(user_code, Decision::Approved(grant), now)
    }

    /// The user denied: polls return `access_denied` until the code expires.
    ///
    /// # Errors
    /// Unknown, expired or already decided.
    pub fn deny(&mut self, user_code: &UserCode, now: UnixTime) -> Result<(), DeviceError> {
        self.decide(user_code, Decision::Denied, now)
    }

    /// The device polls the token endpoint.
    ///
    /// # Errors
    /// Every answer but success is a [`PollError`] (RFC 8628 §3.5); an approved grant is
    /// returned once, later polls get `invalid_grant`.
    pub fn poll(
        &mut self,
        device_code: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<G, PollError> {
        let entry = self
            .by_device_code
            .get_mut(device_code)
            .ok_or(PollError::InvalidGrant)?;
        if entry.client_id != client_id {
            return Err(PollError::InvalidGrant);
        }
        if now >= entry.expires_at {
            return Err(PollError::ExpiredToken);
        }
        let too_fast = entry
            .last_poll
            .is_some_and(|last| now.secs_since(last) < entry.interval);
        entry.last_poll = Some(now);
        if too_fast {
            entry.interval = entry.interval.saturating_add(SLOW_DOWN_STEP_SECS);
            return Err(PollError::SlowDown);
        }
        match entry.decision {
            Decision::Pending => Err(PollError::AuthorizationPending),
            Decision::Denied => Err(PollError::AccessDenied),
            Decision::Approved(_) => {
                let user_code = entry.user_code.clone();
                self.by_user_code.remove(&user_code);
                match self.by_device_code.remove(device_code).map(|e| e.decision) {
                    Some(Decision::Approved(g)) => Ok(g),
                    // The entry was just seen approved under `&mut self`.
                    Some(Decision::Pending | Decision::Denied) | None => {
                        Err(PollError::InvalidGrant)
                    }
                }
            }
        }
    }

    /// Drops expired entries.
    pub fn purge(&mut self, now: UnixTime) {
        let by_user_code = &mut self.by_user_code;
        self.by_device_code.retain(|_, e| {
            let keep = now < e.expires_at;
            if !keep {
                by_user_code.remove(&e.user_code);
            }
            keep
        });
    }

    /// When the next entry expires (call [`DeviceFlow::purge`] then).
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.by_device_code.values().map(|e| e.expires_at).min()
    }

    /// Outstanding entries.
    pub fn len(&self) -> usize {
        self.by_device_code.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_device_code.is_empty()
    }

    fn decidable(&self, user_code: &UserCode, now: UnixTime) -> Result<&Entry<G>, DeviceError> {
        let entry = self
            .by_user_code
            .get(user_code)
            .and_then(|dc| self.by_device_code.get(dc))
            .ok_or(DeviceError::UnknownUserCode)?;
        if now >= entry.expires_at {
            return Err(DeviceError::Expired);
        }
        match entry.decision {
            Decision::Pending => Ok(entry),
            Decision::Approved(_) | Decision::Denied => Err(DeviceError::AlreadyDecided),
        }
    }

    fn decide(
        &mut self,
        user_code: &UserCode,
        decision: Decision<G>,
        now: UnixTime,
    ) -> Result<(), DeviceError> {
        self.decidable(user_code, now)?;
        let entry = self
            .by_user_code
            .get(user_code)
            .and_then(|dc| self.by_device_code.get_mut(dc))
            .ok_or(DeviceError::UnknownUserCode)?;
        entry.decision = decision;
        Ok(())
    }
}

impl<G> Default for DeviceFlow<G> {
    fn default() -> Self {
        Self::new(DeviceFlowConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_normalise_case_dashes_and_spaces() {
        let c = UserCode::parse("bcdf-ghjk").unwrap();
        assert_eq!(c.as_str(), "BCDFGHJK");
        assert_eq!(c.to_string(), "BCDF-GHJK");
        assert_eq!(UserCode::parse(" BC DF\tgh-jk ").unwrap(), c);
        assert_eq!(
            UserCode::parse("BCDF-GHJA"),
            Err(DeviceError::InvalidUserCode)
        );
        assert_eq!(
            UserCode::parse("BCDF-GHJ"),
            Err(DeviceError::InvalidUserCode)
        );
        assert_eq!(
            UserCode::parse("ＢCDFGHJK"),
            Err(DeviceError::InvalidUserCode)
        );
    }

    #[test]
    fn drawn_user_codes_skip_biased_bytes() {
        let mut random = [255u8; 32];
        random[3..11].copy_from_slice(&[0, 1, 19, 20, 239, 40, 2, 3]);
        let c = UserCode::from_random(&random).unwrap();
        assert_eq!(c.as_str(), "BCZBZBDF");
        assert!(UserCode::from_random(&[250; 32]).is_none());
    }
}
