//! `gatehouse login`: sign in at identity, enroll this device, and write its tunnel config.
//!
//! Signing in yields a user-session access token, by the device authorization grant (RFC 8628,
//! [`device`]) or with `--browser` by authorization code + PKCE over a loopback redirect
//! (RFC 8252 §7.3, [`loopback`]). [`enroll`] then registers a new WireGuard key with that token
//! and stores the answer. The endpoints are identity's (docs/identity-api.md). Tokens, the
//! device code and the private key are never printed or logged.

mod device;
mod enroll;
mod loopback;

pub(crate) use enroll::describe_error;

use anyhow::{bail, Context as _};
use oauth2::basic::BasicErrorResponse;
use oauth2::url::Url;
use oauth2::{
    AuthUrl, ClientId, DeviceAuthorizationUrl, HttpClientError, RequestTokenError, TokenUrl,
};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// identity's public client id for the CLI (docs/identity-api.md).
const CLIENT_ID: &str = "gatehouse";
/// Timeout of every HTTP request to identity; identity itself gives up after 30 s.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Names a program that opens login URLs in place of `xdg-open` (tests drive the browser side).
const OPEN_ENV: &str = "GATEHOUSE_LOGIN_OPEN";

#[derive(clap::Args)]
pub(crate) struct LoginArgs {
    /// identity's base URL (its `public_url`), e.g. https://id.example.com.
    #[arg(long, env = "GATEHOUSE_IDENTITY")]
    identity: Url,
    /// Sign in with a browser on this machine (authorization code + PKCE on a loopback port)
    /// instead of entering a code on any device.
    #[arg(long)]
    browser: bool,
    /// Where device.json and gatehouse.conf go (default $XDG_STATE_HOME/gatehouse, else
    /// ~/.local/state/gatehouse).
    #[arg(long, env = "GATEHOUSE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The edge to connect to, by name (default: the profile's first edge).
    #[arg(long)]
    edge: Option<String>,
    /// The host name reported to identity (default: this machine's).
    #[arg(long)]
    hostname: Option<String>,
}

/// identity's endpoints under its base URL.
struct Endpoints {
    authorize: AuthUrl,
    token: TokenUrl,
    device_authorization: DeviceAuthorizationUrl,
    enroll: Url,
    profile: Url,
}

pub(crate) fn login(args: LoginArgs) -> anyhow::Result<()> {
    let endpoints = Endpoints::new(&args.identity)?;
    let http = oauth2::reqwest::Client::builder()
        // Following redirects from a token endpoint opens the client to SSRF (oauth2's docs).
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("failed to build the HTTP client")?;
    let line = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(run(&http, &endpoints, args, &open_url))?;
    wg_driver::process::write_stdout(&line)
}

/// Signs in, enrolls and stores the result; returns the line for stdout. `open` shows a URL
/// to the user's browser: the URL, and the opener to use when no override is set.
async fn run(
    http: &oauth2::reqwest::Client,
    endpoints: &Endpoints,
    args: LoginArgs,
    open: &dyn Fn(&str, Option<&str>),
) -> anyhow::Result<String> {
    let state_dir = crate::state::dir_or_default(args.state_dir)?;
    let access_token = if args.browser {
        loopback::sign_in(http, endpoints, open).await?
    } else {
        device::sign_in(http, endpoints, open).await?
    };
    let options = enroll::Options {
        hostname: args.hostname,
        edge: args.edge,
        state_dir,
        identity: args.identity,
    };
    enroll::enroll(http, &endpoints.enroll, &access_token, options).await
}

impl Endpoints {
    fn new(base: &Url) -> anyhow::Result<Self> {
        if !matches!(base.scheme(), "https" | "http") || base.host().is_none() {
            bail!("--identity must be an http(s) URL, e.g. https://id.example.com");
        }
        if base.scheme() == "http" && !is_loopback(base) {
            tracing::warn!(
                "identity is reached over plain http: tokens cross the network unencrypted"
            );
        }
        let mut base = base.clone();
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |path: &str| {
            base.join(path)
                .with_context(|| format!("failed to build the URL of {path}"))
        };
        Ok(Self {
            authorize: AuthUrl::from_url(join("oauth/authorize")?),
            token: TokenUrl::from_url(join("oauth/token")?),
            device_authorization: DeviceAuthorizationUrl::from_url(join(
                "oauth/device_authorization",
            )?),
            enroll: join("v1/enroll")?,
            profile: join("v1/profile")?,
        })
    }
}

/// identity's `GET /v1/profile` under `base` (warns like `login` about plain http).
///
/// # Errors
/// `base` is not an http(s) URL.
pub(crate) fn profile_url(base: &Url) -> anyhow::Result<Url> {
    Ok(Endpoints::new(base)?.profile)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(oauth2::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(oauth2::url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(oauth2::url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

fn client_id() -> ClientId {
    ClientId::new(CLIENT_ID.to_owned())
}

/// Writes a line for the user to stderr (stdout carries only the result line).
fn tell(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Server-chosen text fit for the terminal: printable ASCII, at most 64 characters.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Opens `url` with `$GATEHOUSE_LOGIN_OPEN`, else with `fallback` (e.g. `xdg-open`) if given.
/// Does not wait for the program; failing to start it only costs the user a copy and paste.
fn open_url(url: &str, fallback: Option<&str>) {
    let program = match std::env::var_os(OPEN_ENV) {
        Some(program) if !program.is_empty() => program,
        _ => match fallback {
            Some(program) => program.into(),
            None => return,
        },
    };
    let spawned = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped on a thread so the child does not linger as a zombie while we poll.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => tracing::debug!(program = ?program, "failed to start the URL opener: {e}"),
    }
}

/// Describes a failed token request without echoing the answer body, which may hold a token.
fn token_error(
    what: &str,
    err: RequestTokenError<HttpClientError<oauth2::reqwest::Error>, BasicErrorResponse>,
) -> anyhow::Error {
    match err {
        RequestTokenError::ServerResponse(answer) => {
            anyhow::anyhow!("identity refused the {what}: {answer}")
        }
        RequestTokenError::Request(e) => {
            anyhow::Error::new(e).context(format!("failed to send the {what}"))
        }
        RequestTokenError::Parse(e, _body) => anyhow::anyhow!(
            "identity's answer to the {what} is not valid OAuth JSON (at `{}`)",
            e.path()
        ),
        RequestTokenError::Other(text) => anyhow::anyhow!("the {what} failed: {text}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn endpoints_join_under_the_base_path() {
        let base: Url = "https://id.example.com/gh?x=1".parse().unwrap();

        let endpoints = Endpoints::new(&base).unwrap();

        assert_eq!(
            endpoints.token.as_str(),
            "https://id.example.com/gh/oauth/token"
        );
        assert_eq!(
            endpoints.device_authorization.as_str(),
            "https://id.example.com/gh/oauth/device_authorization"
        );
        assert_eq!(
            endpoints.authorize.as_str(),
            "https://id.example.com/gh/oauth/authorize"
        );
        assert_eq!(
            endpoints.enroll.as_str(),
            "https://id.example.com/gh/v1/enroll"
        );
        assert_eq!(
            endpoints.profile.as_str(),
            "https://id.example.com/gh/v1/profile"
        );
    }

    #[test]
    fn non_http_identity_urls_are_rejected() {
        let base: Url = "file:///etc/passwd".parse().unwrap();

        assert!(Endpoints::new(&base).is_err());
    }
}
