//! `gatehouse connect`: refresh the device profile at identity, regenerate the tunnel
//! configuration from it, and bring the tunnel up through `gatehouse up`'s code path.
//!
//! The saved login (`device.json`) names identity and holds the device token; the private key
//! stays in `gatehouse.conf`, which is rewritten with the fresh profile. If identity cannot be
//! reached the last saved profile is used (a WARN says so); if identity refuses the device
//! token (401, 403, 404: device revoked, user disabled, token expired) nothing is brought up and
//! the user is told to log in again. The token and the key are never logged.

use crate::cli_up::{self, UpArgs};
use crate::state::{self, DEVICE_FILE};
use anyhow::{bail, Context as _};
use client_core::device_state::{profile_answer, DeviceState, ProfileAnswer};
use client_core::enroll::wg_quick_config;
use client_core::status::utc;
use oauth2::reqwest::header::ACCEPT;
use oauth2::url::Url;
use std::path::PathBuf;
use std::time::Duration;

/// How long connecting to identity may take before the saved profile is used.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole profile request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub(crate) struct ConnectArgs {
    /// The state directory of `gatehouse login` (default $XDG_STATE_HOME/gatehouse, else
    /// ~/.local/state/gatehouse).
    #[arg(long, env = "GATEHOUSE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The TUN interface name (at most 15 characters).
    #[arg(long, short, default_value = "gatehouse0", env = "GATEHOUSE_INTERFACE")]
    interface: String,
    /// The edge to connect to, by name; remembered for the next connect (default: the one
    /// chosen at login, else the profile's first).
    #[arg(long)]
    edge: Option<String>,
    /// Detach and run as a background service; returns once the tunnel is configured.
    #[arg(long)]
    background: bool,
    /// Log file for --background (default /var/log/gatehouse-<interface>.log).
    #[arg(long)]
    log_file: Option<PathBuf>,
}

pub(crate) fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let dir = state::dir_or_default(args.state_dir)?;
    let saved = state::load_device(&dir)?.with_context(|| {
        format!(
            "not logged in: no {DEVICE_FILE} in {}; run `gatehouse login` first",
            dir.display()
        )
    })?;
    let private_key = state::load_private_key(&dir, &saved)?;
    let fetched = fetch_profile(&saved)?;
    let mut device = apply_answer(saved, fetched, state::unix_now())?;
    if let Some(edge) = args.edge {
        device.edge = Some(edge);
    }
    let config = wg_quick_config(
        &device.profile,
        &private_key.to_base64(),
        device.edge.as_deref(),
    )
    .context("failed to build the tunnel configuration from the profile")?;
    let config_path = state::save(&dir, &device, &config)?;
    tracing::debug!(config = %config_path.display(), "tunnel configuration written");
    cli_up::up(UpArgs {
        config: config_path,
        interface: args.interface,
        exclude: Vec::new(),
        background: args.background,
        log_file: args.log_file,
    })
}

/// `GET /v1/profile` with the device token: the status and body, or why there is no answer.
///
/// # Errors
/// The saved identity URL is invalid, or the HTTP client cannot be built.
fn fetch_profile(device: &DeviceState) -> anyhow::Result<Result<(u16, Vec<u8>), String>> {
    let base = Url::parse(&device.identity)
        .with_context(|| format!("the identity URL in {DEVICE_FILE} is invalid"))?;
    let url = crate::login::profile_url(&base)?;
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("failed to build the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?;
    let answer = runtime.block_on(async {
        let answer = http
            .get(url)
            .bearer_auth(device.device_token.expose())
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        let status = answer.status().as_u16();
        let body = answer.bytes().await?;
        Ok::<_, oauth2::reqwest::Error>((status, body.to_vec()))
    });
    Ok(answer.map_err(|e| format!("{:#}", anyhow::Error::new(e))))
}

/// The device state to connect with: `saved` with the fresh profile, or `saved` itself when
/// identity has no usable answer.
///
/// # Errors
/// identity refuses the device token: the user must log in again.
fn apply_answer(
    saved: DeviceState,
    fetched: Result<(u16, Vec<u8>), String>,
    now: u64,
) -> anyhow::Result<DeviceState> {
    let reason = match fetched {
        Ok((status, body)) => match profile_answer(status, &body) {
            ProfileAnswer::Fresh(profile) => {
                tracing::info!("profile refreshed from identity");
                return Ok(DeviceState {
                    profile,
                    profile_updated_at: Some(now),
                    ..saved
                });
            }
            ProfileAnswer::Refused => bail!(
                "identity refused this device (HTTP {status}: {}): it was revoked, its user \
                 disabled, or its login expired; run `gatehouse login` again",
                crate::login::describe_error(&body)
            ),
            ProfileAnswer::Unavailable(reason) => reason,
        },
        Err(reason) => reason,
    };
    let saved_at = saved
        .profile_updated_at
        .or(saved.enrolled_at)
        .map_or_else(|| "at login".to_owned(), |t| format!("at {}", utc(t)));
    tracing::warn!(
        "identity is unreachable ({reason}); connecting with the profile saved {saved_at}"
    );
    Ok(saved)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use client_core::enroll::{DeviceToken, Profile};

    fn saved() -> DeviceState {
        DeviceState {
            version: 1,
            identity: "http://127.0.0.1:1".into(),
            device_id: "dev_1".into(),
            device_token: DeviceToken::new("t".into()),
            public_key: "k".into(),
            profile: Profile {
                routes: vec!["10.0.0.0/8".into()],
                ..Profile::default()
            },
            edge: None,
            posture: None,
            enrolled_at: Some(10),
            profile_updated_at: None,
        }
    }

    #[test]
    fn a_fresh_profile_replaces_the_saved_one() {
        let body = br#"{"addresses":["100.64.0.9/32"],"edges":[],"routes":[],"dns":[]}"#;

        let device = apply_answer(saved(), Ok((200, body.to_vec())), 99).unwrap();

        assert_eq!(device.profile.addresses[0].to_string(), "100.64.0.9/32");
        assert!(device.profile.routes.is_empty());
        assert_eq!(device.profile_updated_at, Some(99));
        assert_eq!(device.device_id, "dev_1");
    }

    #[test]
    fn unreachable_or_failing_identity_keeps_the_saved_profile() {
        for fetched in [
            Err("connection refused".to_owned()),
            Ok((503, b"busy".to_vec())),
            Ok((200, b"<html>".to_vec())),
        ] {
            let device = apply_answer(saved(), fetched, 99).unwrap();

            assert_eq!(device, saved());
        }
    }

    #[test]
    fn a_refused_token_asks_for_a_new_login() {
        for status in [401, 403, 404] {
            let body = br#"{"error":"invalid_token","error_description":"device revoked"}"#;

            let err = apply_answer(saved(), Ok((status, body.to_vec())), 99).unwrap_err();

            let text = format!("{err:#}");
            assert!(text.contains("run `gatehouse login` again"), "{text}");
            assert!(text.contains("device revoked"), "{text}");
        }
    }
}
