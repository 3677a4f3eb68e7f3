//! Enrollment: a new WireGuard key, `POST /v1/enroll`, and the state files.
//!
//! The state directory holds `device.json` (device id and token, the profile) and
//! `gatehouse.conf` (a wg-quick file for `gatehouse up`, with the private key), both 0600 and
//! replaced atomically. Nothing is written unless identity accepted the key and its profile
//! renders.

use crate::state;
use anyhow::{bail, Context as _};
use client_core::device_state::{DeviceState, STATE_VERSION};
use client_core::enroll::{wg_quick_config, EnrollRequest, EnrollResponse, Posture};
use oauth2::reqwest::header::{ACCEPT, CONTENT_TYPE};
use oauth2::url::Url;
use oauth2::AccessToken;
use std::path::PathBuf;

/// How much of a failed answer's body is shown: enough for an error text, not a page.
const MAX_SHOWN_BODY: usize = 512;

/// What `gatehouse login` passes on besides the token.
pub(super) struct Options {
    pub(super) hostname: Option<String>,
    pub(super) edge: Option<String>,
    pub(super) state_dir: PathBuf,
    pub(super) identity: Url,
}

/// Enrolls a new key with `access_token`, writes the state files, and returns the result line.
pub(super) async fn enroll(
    http: &oauth2::reqwest::Client,
    url: &Url,
    access_token: &AccessToken,
    options: Options,
) -> anyhow::Result<String> {
    let private_key = wg_driver::keygen::generate_private_key();
    let public_key = private_key.public_key().to_base64();
    let request = EnrollRequest {
        public_key: public_key.clone(),
        posture: posture(options.hostname),
    };
    let reported = request.posture.clone();
    let body = serde_json::to_vec(&request).context("failed to encode the enroll request")?;
    let answer = http
        .post(url.clone())
        .bearer_auth(access_token.secret())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .context("failed to send the enroll request")?;
    let status = answer.status();
    let body = answer
        .bytes()
        .await
        .context("failed to read identity's enroll answer")?;
    if !status.is_success() {
        bail!(
            "identity refused the enrollment ({status}): {}",
            describe_error(&body)
        );
    }
    let enrolled: EnrollResponse =
        serde_json::from_slice(&body).context("identity's enroll answer is not an enrollment")?;
    if enrolled.device_id.is_empty() || !enrolled.device_id.chars().all(|c| c.is_ascii_graphic()) {
        bail!("identity's enroll answer has an invalid device_id");
    }
    let config = wg_quick_config(
        &enrolled.profile,
        &private_key.to_base64(),
        options.edge.as_deref(),
    )
    .context("failed to build the tunnel configuration from the profile")?;

    let state = DeviceState {
        version: STATE_VERSION,
        identity: options.identity.as_str().to_owned(),
        device_id: enrolled.device_id.clone(),
        device_token: enrolled.device_token,
        public_key,
        profile: enrolled.profile.clone(),
        edge: options.edge,
        posture: Some(reported),
        enrolled_at: Some(state::unix_now()),
        profile_updated_at: None,
    };
    let config_path = state::save(&options.state_dir, &state, &config)?;
    tracing::info!("device enrolled");
    tracing::debug!(device = %enrolled.device_id, "enrollment stored");

    let addresses: Vec<String> = enrolled
        .profile
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(format!(
        "enrolled device={} addresses={} config={}\n",
        enrolled.device_id,
        addresses.join(","),
        config_path.display()
    ))
}

/// What this machine reports to identity.
fn posture(hostname: Option<String>) -> Posture {
    let (release, nodename) = uname();
    Posture {
        os: std::env::consts::OS.to_owned(),
        os_version: release,
        hostname: hostname.unwrap_or(nodename),
        client_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The kernel release and node (host) name from uname(2); empty strings if it fails.
fn uname() -> (String, String) {
    // SAFETY: utsname is plain C data for which all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname(2) writes NUL-terminated strings into the struct we own.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (String::new(), String::new());
    }
    (c_field(&uts.release), c_field(&uts.nodename))
}

fn c_field(field: &[libc::c_char]) -> String {
    // `c_char` is `i8` or `u8` by platform; the cast keeps the byte either way.
    #[allow(clippy::cast_sign_loss)]
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// identity's `{"error","error_description"}`, else the start of the body, terminal-safe.
pub(crate) fn describe_error(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorAnswer {
        error: String,
        error_description: Option<String>,
    }
    let text = match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            error,
            error_description: Some(description),
        }) => format!("{error}: {description}"),
        Ok(ErrorAnswer { error, .. }) => error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(MAX_SHOWN_BODY)]).into_owned(),
    };
    let shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SHOWN_BODY)
        .collect();
    if shown.trim().is_empty() {
        "no details".to_owned()
    } else {
        shown
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_show_code_and_description() {
        let body = br#"{"error":"invalid_token","error_description":"session revoked"}"#;

        assert_eq!(describe_error(body), "invalid_token: session revoked");
    }

    #[test]
    fn other_bodies_are_truncated_and_terminal_safe() {
        let mut body = b"\x1b[2Jbad gateway\n".to_vec();
        body.resize(4096, b'x');

        let shown = describe_error(&body);

        assert!(shown.starts_with(" [2Jbad gateway "), "{shown}");
        assert_eq!(shown.len(), MAX_SHOWN_BODY);
        assert_eq!(describe_error(b""), "no details");
    }

    #[test]
    fn posture_reports_this_machine() {
        let posture = posture(Some("laptop".into()));

        assert_eq!(posture.os, std::env::consts::OS);
        assert_eq!(posture.hostname, "laptop");
        assert!(!posture.os_version.is_empty());
        assert_eq!(posture.client_version, env!("CARGO_PKG_VERSION"));
    }
}
