//! Enrollment: a new WireGuard key, `POST /v1/enroll`, and the state files.
//!
//! The state directory holds `device.json` (device id and token, the profile) and
//! `gatehouse.conf` (a wg-quick file for `gatehouse up`, with the private key), both 0600 and
//! replaced atomically. Nothing is written unless identity accepted the key and its profile
//! renders.

use anyhow::{bail, Context as _};
use client_core::enroll::{
    wg_quick_config, DeviceToken, EnrollRequest, EnrollResponse, Posture, Profile,
};
use oauth2::reqwest::header::{ACCEPT, CONTENT_TYPE};
use oauth2::url::Url;
use oauth2::AccessToken;
use serde::Serialize;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Version of `device.json`'s layout; bumped with a migration when it changes.
const STATE_VERSION: u32 = 1;
/// How much of a failed answer's body is shown: enough for an error text, not a page.
const MAX_SHOWN_BODY: usize = 512;

/// What `gatehouse login` passes on besides the token.
pub(super) struct Options {
    pub(super) hostname: Option<String>,
    pub(super) edge: Option<String>,
    pub(super) state_dir: PathBuf,
    pub(super) identity: Url,
}

/// `device.json`.
#[derive(Serialize)]
struct DeviceState<'a> {
    version: u32,
    identity: &'a str,
    device_id: &'a str,
    device_token: &'a DeviceToken,
    public_key: &'a str,
    profile: &'a Profile,
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
        identity: options.identity.as_str(),
        device_id: &enrolled.device_id,
        device_token: &enrolled.device_token,
        public_key: &public_key,
        profile: &enrolled.profile,
    };
    let mut state_json =
        serde_json::to_vec_pretty(&state).context("failed to encode device.json")?;
    state_json.push(b'\n');
    let dir = &options.state_dir;
    create_private_dir(dir)?;
    let config_path = dir.join("gatehouse.conf");
    write_private(&dir.join("device.json"), &state_json)?;
    write_private(&config_path, config.as_bytes())?;
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

/// `$XDG_STATE_HOME/gatehouse`, else `~/.local/state/gatehouse` (XDG Base Directory spec: a
/// relative `XDG_STATE_HOME` is invalid and ignored).
pub(super) fn default_state_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("gatehouse"));
        }
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/gatehouse")),
        _ => bail!("neither XDG_STATE_HOME nor HOME is set: pass --state-dir"),
    }
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
fn describe_error(body: &[u8]) -> String {
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

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))
}

/// Replaces `path` with `bytes` atomically, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only when the file is created; a leftover keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("failed to write {}", path.display()))
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
    fn state_files_are_private() {
        let dir = std::env::temp_dir().join(format!("gatehouse-login-test-{}", std::process::id()));
        let nested = dir.join("state");

        create_private_dir(&nested).unwrap();
        write_private(&nested.join("f"), b"one").unwrap();
        write_private(&nested.join("f"), b"two").unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("f")), 0o600);
        assert_eq!(std::fs::read(nested.join("f")).unwrap(), b"two");
        assert!(!nested.join("f.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
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
