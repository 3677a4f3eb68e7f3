//! [`Identity`]: the real `gatehouse-identity` binary on loopback with a generated
//! configuration (temp SQLite database, an admin token, upstream OIDC providers).
//!
//! The identity port is chosen before the providers start ([`free_loopback_port`]) because each
//! provider registers identity's redirect URI `<public_url>/callback/<provider id>`.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::oidc::loopback_request;
use crate::{bin, random_suffix, wait_until, Proc, TestDir};

/// How long identity may take to open its database and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// An upstream OIDC provider entry of identity's configuration.
#[derive(Debug, Clone)]
pub struct UpstreamProvider {
    /// `[a-z0-9_-]+`; the redirect URI is `<public_url>/callback/<id>`.
    pub id: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub groups_claim: String,
}

/// A running `gatehouse-identity serve`: killed (by process group) on `Drop`.
#[derive(Debug)]
pub struct Identity {
    proc: Proc,
    base_url: String,
    admin_token: String,
    config_path: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Identity {
    /// A free port on 127.0.0.1 to give [`Identity::start`] (bound, then released: another
    /// process could take it in between, which loopback tests accept).
    ///
    /// # Errors
    /// If no port can be bound.
    pub fn free_loopback_port() -> anyhow::Result<u16> {
        free_loopback_port()
    }

    /// `http://127.0.0.1:<port>/callback/<provider_id>`: the redirect URI identity uses at a
    /// provider.
    pub fn redirect_uri(port: u16, provider_id: &str) -> String {
        format!("http://127.0.0.1:{port}/callback/{provider_id}")
    }

    /// Writes `dir/identity.toml` (database `dir/identity-<random>.db`, a random admin token,
    /// the given providers, one edge) and starts identity on `127.0.0.1:<port>`, waiting until
    /// `GET /healthz` answers 200.
    ///
    /// # Errors
    /// If the binary is missing, exits, or is not healthy within 20 s.
    pub fn start(
        dir: &TestDir,
        port: u16,
        providers: &[UpstreamProvider],
    ) -> anyhow::Result<Identity> {
        let admin_token = format!("admin-{}", random_suffix(24));
        let base_url = format!("http://127.0.0.1:{port}");
        let database = dir.join(format!("identity-{}.db", random_suffix(4)));
        let config = config_toml(
            &base_url,
            port,
            &database.to_string_lossy(),
            &admin_token,
            providers,
        );
        let config_path = dir.write("identity.toml", config)?;
        let log = dir.join("identity.log");
        let proc = spawn(&config_path, &log, &base_url)?;
        Ok(Identity {
            proc,
            base_url,
            admin_token,
            config_path,
            log,
        })
    }

    /// Stops the process (SIGTERM, waiting for it to exit).
    ///
    /// # Errors
    /// If it cannot be signalled.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.proc.stop().map(|_| ())
    }

    /// Starts it again with the same configuration and database, on the same port.
    ///
    /// # Errors
    /// As [`Identity::start`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.proc.is_running() {
            self.stop()?;
        }
        self.proc = spawn(&self.config_path, &self.log, &self.base_url)?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>` (no trailing slash): `public_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The admin API's Bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The process (its log at DEBUG shows why a login was rejected).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// The X25519 public key of the one edge in the generated configuration.
pub const TEST_EDGE_PUBLIC_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

fn config_toml(
    base_url: &str,
    port: u16,
    database: &str,
    admin_token: &str,
    providers: &[UpstreamProvider],
) -> String {
    let mut config = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         public_url = {base_url:?}\n\
         database = {database:?}\n\
         admin_token = {admin_token:?}\n\
         routes = [\"10.0.0.0/8\"]\n\
         dns = [\"10.0.0.53\"]\n\
         \n\
         [[edges]]\n\
         name = \"test1\"\n\
         endpoint = \"127.0.0.1:51820\"\n\
         public_key = {TEST_EDGE_PUBLIC_KEY:?}\n\
         region = \"local\"\n"
    );
    for provider in providers {
        config.push_str(&format!(
            "\n[[providers]]\n\
             id = {:?}\n\
             kind = \"oidc\"\n\
             issuer = {:?}\n\
             client_id = {:?}\n\
             client_secret = {:?}\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\
             groups_claim = {:?}\n",
            provider.id,
            provider.issuer,
            provider.client_id,
            provider.client_secret,
            provider.groups_claim
        ));
    }
    config
}

/// Spawns `serve --config` and waits until `GET /healthz` answers 200.
fn spawn(
    config_path: &std::path::Path,
    log: &std::path::Path,
    base_url: &str,
) -> anyhow::Result<Proc> {
    let mut command = Command::new(bin("gatehouse-identity"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config_path)
        .env("RUST_LOG", "identity=debug,info");
    let mut proc = Proc::spawn(command, "gatehouse-identity", log)?;
    let healthy = wait_until(READY_TIMEOUT, Duration::from_millis(50), || {
        if !proc.is_running() {
            return true;
        }
        matches!(loopback_request(base_url, "GET", "/healthz"), Ok((200, _)))
    });
    if !proc.is_running() || !healthy {
        anyhow::bail!(
            "gatehouse-identity did not become healthy at {base_url}/healthz within \
             {READY_TIMEOUT:?}; log:\n{}",
            proc.log()
        );
    }
    Ok(proc)
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_provider_with_its_redirect_port() {
        let providers = [UpstreamProvider {
            id: "corp".into(),
            issuer: "http://127.0.0.1:1".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            groups_claim: "groups".into(),
        }];
        let text = config_toml("http://127.0.0.1:7", 7, "/tmp/x.db", "t", &providers);
        assert!(text.contains("listen = \"127.0.0.1:7\""));
        assert!(text.contains("id = \"corp\""));
        assert!(text.contains("issuer = \"http://127.0.0.1:1\""));
        assert_eq!(text.matches("[[providers]]").count(), 1);
    }
}
