//! Test OpenID Connect providers from `tests/oidc-provider` as node processes on loopback:
//! [`OidcProvider`] (the OpenID-certified npm `oidc-provider`) and [`BrokenProvider`] (a
//! `jose`-built provider whose ID tokens are broken on purpose, one [`BrokenMode`] at a time).
//!
//! They need `node` and `tests/oidc-provider/node_modules` (`bash tests/oidc-provider/install.sh`).
//! Without them [`node_available_or_skip`] skips the test with the reason, and fails it under
//! `CI=true`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::{find_in_path, in_ci, workspace_root, Proc, TestDir};

/// How long node may take to load the provider and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The confidential client a provider registers (identity's relying party).
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
}

/// A fixed account of `provider.mjs` (see its README).
#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub username: &'static str,
    pub password: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// `alice`, groups `engineering` and `admins` (also the user `broken.mjs` logs in).
pub const ALICE: Account = Account {
    username: "alice",
    password: "alice-password",
    email: "alice@example.com",
    groups: &["engineering", "admins"],
};
/// `bob`, group `sales`.
pub const BOB: Account = Account {
    username: "bob",
    password: "bob-password",
    email: "bob@example.com",
    groups: &["sales"],
};

/// The folder holding `provider.mjs`, `broken.mjs` and `node_modules`.
pub fn provider_dir() -> PathBuf {
    workspace_root().join("tests").join("oidc-provider")
}

/// `Ok` when `node` is on `PATH` and the provider packages are installed; otherwise why not.
///
/// # Errors
/// A human-readable reason with the command that fixes it.
pub fn node_available() -> Result<PathBuf, String> {
    let node = find_in_path("node").ok_or_else(|| "`node` is not on PATH".to_owned())?;
    let modules = provider_dir().join("node_modules");
    for package in ["oidc-provider", "jose"] {
        if !modules.join(package).join("package.json").is_file() {
            return Err(format!(
                "{} is missing: run `bash tests/oidc-provider/install.sh`",
                modules.join(package).display()
            ));
        }
    }
    Ok(node)
}

/// `true` to go on with a test that needs the node providers; `false` after printing
/// `skipped: needs node and tests/oidc-provider/node_modules: <reason>`.
///
/// # Panics
/// When they are missing and [`in_ci`]: CI must never be green by skipping.
#[allow(clippy::print_stderr)] // The skip reason is for the person reading the test output.
pub fn node_available_or_skip() -> bool {
    match node_available() {
        Ok(_) => true,
        Err(reason) if in_ci() => {
            panic!("needs node and tests/oidc-provider/node_modules, and CI=true forbids skipping: {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: needs node and tests/oidc-provider/node_modules: {reason}");
            false
        }
    }
}

/// Returns from the calling test unless the node providers can run (see
/// [`node_available_or_skip`]).
#[macro_export]
macro_rules! skip_unless_node {
    () => {
        if !$crate::oidc::node_available_or_skip() {
            return;
        }
    };
    ($ret:expr) => {
        if !$crate::oidc::node_available_or_skip() {
            return $ret;
        }
    };
}

/// A running `provider.mjs`: killed (by process group) on `Drop`.
#[derive(Debug)]
pub struct OidcProvider {
    proc: Proc,
    issuer: String,
    client: OidcClient,
}

impl OidcProvider {
    /// Starts `provider.mjs` on a free loopback port with `client` registered; its log goes to
    /// `dir/oidc-provider.log`.
    ///
    /// # Errors
    /// If node is missing or the provider does not print its ready line within 20 s.
    pub fn start(dir: &TestDir, client: OidcClient) -> anyhow::Result<OidcProvider> {
        let mut args = client_args(&client);
        args.insert(0, "provider.mjs".to_owned());
        let (proc, issuer) = spawn_node(dir, "oidc-provider", &args, "oidc-provider ready ")?;
        Ok(OidcProvider {
            proc,
            issuer,
            client,
        })
    }

    /// Like [`OidcProvider::start`], inside `netns` (its loopback): control calls such as
    /// [`OidcProvider::set_groups`] must then run in that namespace too
    /// ([`Netns::in_thread`](crate::Netns::in_thread)).
    ///
    /// # Errors
    /// As [`OidcProvider::start`].
    pub fn start_in(
        dir: &TestDir,
        netns: &crate::Netns,
        client: OidcClient,
    ) -> anyhow::Result<OidcProvider> {
        let node = node_available().map_err(anyhow::Error::msg)?;
        let script = provider_dir().join("provider.mjs");
        let mut args = vec![script.to_string_lossy().to_string()];
        args.extend(client_args(&client));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = dir.join(format!("oidc-provider-{}.log", crate::random_suffix(4)));
        let mut proc = netns.spawn(node, &args, &log)?;
        let ready = "oidc-provider ready ";
        proc.wait_for_log(ready, READY_TIMEOUT)?;
        let issuer = ready_issuer(&proc.log(), ready)?;
        Ok(OidcProvider {
            proc,
            issuer,
            client,
        })
    }

    /// `http://127.0.0.1:<port>` (no trailing slash), the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Replaces `username`'s groups at the provider (what its next token, refreshed or not,
    /// carries).
    ///
    /// # Errors
    /// If the control request fails.
    pub fn set_groups(&self, username: &str, groups: &[&str]) -> anyhow::Result<()> {
        let path = format!(
            "/_test/groups?username={username}&groups={}",
            groups.join(",")
        );
        let (status, body) = loopback_post(&self.issuer, &path)?;
        if status != 200 {
            bail!("set groups answered {status}: {body}");
        }
        Ok(())
    }

    /// Deletes `username` at the provider: its refresh tokens then answer `invalid_grant`.
    ///
    /// # Errors
    /// If the control request fails.
    pub fn remove_account(&self, username: &str) -> anyhow::Result<()> {
        let (status, body) = loopback_post(
            &self.issuer,
            &format!("/_test/remove-account?username={username}"),
        )?;
        if status != 200 {
            bail!("remove account answered {status}: {body}");
        }
        Ok(())
    }

    /// The registered client.
    pub fn client(&self) -> &OidcClient {
        &self.client
    }

    /// The process (its log shows requests' errors and rotations).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Switches signing to a new key with a new `kid` (the old keys stay in the JWKS unless
    /// `retire`), and returns the new `kid`.
    ///
    /// # Errors
    /// If the admin request fails.
    pub fn rotate_key(&self, retire: bool) -> anyhow::Result<String> {
        let path = if retire {
            "/_test/rotate-key?retire=1"
        } else {
            "/_test/rotate-key"
        };
        let (status, body) = loopback_post(&self.issuer, path)?;
        if status != 200 {
            bail!("rotate-key answered {status}: {body}");
        }
        json_string_field(&body, "kid").context("rotate-key answer without kid")
    }

    /// The `kid`s in the provider's JWKS, newest first.
    ///
    /// # Errors
    /// If the JWKS cannot be fetched.
    pub fn jwks_kids(&self) -> anyhow::Result<Vec<String>> {
        let (status, body) = loopback_request(&self.issuer, "GET", "/jwks")?;
        if status != 200 {
            bail!("jwks answered {status}: {body}");
        }
        Ok(body
            .match_indices("\"kid\":\"")
            .filter_map(|(at, needle)| {
                let rest = &body[at + needle.len()..];
                rest.find('"').map(|end| rest[..end].to_owned())
            })
            .collect())
    }
}

/// What [`BrokenProvider`] gets wrong (`broken.mjs --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenMode {
    /// Nothing: the control.
    Ok,
    WrongNonce,
    Expired,
    UnknownKey,
    BadSignature,
    AlgNone,
    Hs256PublicKey,
    WrongIss,
    WrongAud,
    WrongAzp,
    WrongState,
}

impl BrokenMode {
    /// The mode's name on `broken.mjs`'s command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenMode::Ok => "ok",
            BrokenMode::WrongNonce => "wrong-nonce",
            BrokenMode::Expired => "expired",
            BrokenMode::UnknownKey => "unknown-key",
            BrokenMode::BadSignature => "bad-signature",
            BrokenMode::AlgNone => "alg-none",
            BrokenMode::Hs256PublicKey => "hs256-public-key",
            BrokenMode::WrongIss => "wrong-iss",
            BrokenMode::WrongAud => "wrong-aud",
            BrokenMode::WrongAzp => "wrong-azp",
            BrokenMode::WrongState => "wrong-state",
        }
    }
}

/// A running `broken.mjs`: killed (by process group) on `Drop`.
#[derive(Debug)]
pub struct BrokenProvider {
    proc: Proc,
    issuer: String,
}

impl BrokenProvider {
    /// Starts `broken.mjs` in `mode` on a free loopback port with `client` registered.
    ///
    /// # Errors
    /// If node is missing or the provider does not print its ready line within 20 s.
    pub fn start(
        dir: &TestDir,
        client: &OidcClient,
        mode: BrokenMode,
    ) -> anyhow::Result<BrokenProvider> {
        let mut args = client_args(client);
        args.splice(
            0..0,
            [
                "broken.mjs".to_owned(),
                "--mode".to_owned(),
                mode.as_str().to_owned(),
            ],
        );
        let (proc, issuer) = spawn_node(dir, "broken-oidc", &args, "broken-oidc ready ")?;
        Ok(BrokenProvider { proc, issuer })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The process.
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Switches to `mode` for the next authorization requests.
    ///
    /// # Errors
    /// If the admin request fails.
    pub fn set_mode(&self, mode: BrokenMode) -> anyhow::Result<()> {
        let (status, body) =
            loopback_post(&self.issuer, &format!("/_test/mode?mode={}", mode.as_str()))?;
        if status != 200 {
            bail!("set mode answered {status}: {body}");
        }
        Ok(())
    }
}

fn client_args(client: &OidcClient) -> Vec<String> {
    let mut args = vec![
        "--port".to_owned(),
        "0".to_owned(),
        "--client-id".to_owned(),
        client.client_id.clone(),
        "--client-secret".to_owned(),
        client.client_secret.clone(),
    ];
    for uri in &client.redirect_uris {
        args.push("--redirect-uri".to_owned());
        args.push(uri.clone());
    }
    args
}

/// Spawns `node <args>` in the provider folder and waits for `ready` (a line prefix carrying
/// `issuer=<url>`); returns the process and the issuer.
fn spawn_node(
    dir: &TestDir,
    label: &str,
    args: &[String],
    ready: &str,
) -> anyhow::Result<(Proc, String)> {
    let node = node_available().map_err(anyhow::Error::msg)?;
    let mut command = Command::new(node);
    command.args(args).current_dir(provider_dir());
    let log = dir.join(format!("{label}-{}.log", crate::random_suffix(4)));
    let mut proc = Proc::spawn(command, label, &log)?;
    proc.wait_for_log(ready, READY_TIMEOUT)?;
    let issuer = ready_issuer(&proc.log(), ready)?;
    Ok((proc, issuer))
}

/// The `issuer=` of the `ready` line in a provider's log.
fn ready_issuer(log: &str, ready: &str) -> anyhow::Result<String> {
    log.lines()
        .find(|line| line.starts_with(ready))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix("issuer="))
        })
        .map(str::to_owned)
        .context("ready line without issuer=")
}

fn loopback_post(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    loopback_request(base, "POST", path)
}

/// A minimal HTTP/1.1 request to a loopback `http://host:port` base, for the harness's own
/// control calls (tests use a real HTTP client).
pub(crate) fn loopback_request(
    base: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let authority = base
        .strip_prefix("http://")
        .context("only http:// bases")?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(authority)
        .with_context(|| format!("failed to connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .context("failed to read the response")?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("malformed status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn json_string_field(body: &str, field: &str) -> Option<String> {
    let needle = format!("\"{field}\":\"");
    let start = body.find(&needle)? + needle.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_field_reads_a_flat_field() {
        let body = r#"{"kid":"k-1","kids":["k-1","k-0"]}"#;
        assert_eq!(json_string_field(body, "kid").as_deref(), Some("k-1"));
        assert_eq!(json_string_field(body, "nope"), None);
    }

    #[test]
    fn provider_rotates_its_signing_key() {
        crate::skip_unless_node!();
        let dir = TestDir::new("oidc-unit").expect("dir");
        let client = OidcClient {
            client_id: "c".into(),
            client_secret: "s".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        };
        let provider = OidcProvider::start(&dir, client).expect("provider");
        let before = provider.jwks_kids().expect("jwks");
        assert_eq!(before.len(), 1);
        let kid = provider.rotate_key(false).expect("rotate");
        let after = provider.jwks_kids().expect("jwks");
        assert_eq!(after, vec![kid.clone(), before[0].clone()]);
        provider.rotate_key(true).expect("rotate and retire");
        let retired = provider.jwks_kids().expect("jwks");
        assert_eq!(retired.len(), 1);
        assert_ne!(retired[0], kid);
    }
}
