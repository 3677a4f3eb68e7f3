//! `serve --embedded DIR`: a self-contained identity for demos and small deployments.
//!
//! On first start it writes into DIR (mode 0700): `identity.toml` (loopback listener, the
//! built-in local provider, SQLite at `identity.db`), `users.toml` with two sample accounts
//! (`alice@example.com` in groups engineering and admins, `bob@example.com` in sales) whose
//! random passwords go to `passwords.txt`, `admin.token` (the admin API token) and
//! `edge.token` (a service token an edge subscribes to the feed with). Secret files are 0600;
//! nothing secret is logged. Later starts reuse all of it; edit the files to change it.

use crate::config::{self, Config, Overrides};
use anyhow::Context as _;
use identity_core::service_token::ServiceTokenSecret;
use identity_store::{NewServiceToken, ServiceTokenId, ServiceTokenKind, Store};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

const SAMPLE_USERS: [(&str, &str, &[&str]); 2] = [
    ("alice@example.com", "Alice", &["engineering", "admins"]),
    ("bob@example.com", "Bob", &["sales"]),
];

/// Creates what is missing in `dir` and returns the configuration to serve.
///
/// # Errors
/// Files that cannot be written or read, an invalid existing `identity.toml`.
pub(crate) fn prepare(dir: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    let config_path = dir.join("identity.toml");
    if !config_path.exists() {
        write_file(&config_path, CONFIG.as_bytes(), 0o644)?;
    }
    let users = dir.join("users.toml");
    if !users.exists() {
        let (file, passwords) = sample_users()?;
        write_file(&dir.join("passwords.txt"), passwords.as_bytes(), 0o600)?;
        write_file(&users, file.as_bytes(), 0o600)?;
        tracing::info!(
            "embedded: created sample users alice@example.com and bob@example.com; \
             their passwords are in {}",
            dir.join("passwords.txt").display()
        );
    }
    let admin = dir.join("admin.token");
    if !admin.exists() {
        let token = crate::flows::random_token(32);
        write_file(&admin, format!("{token}\n").as_bytes(), 0o600)?;
    }
    let config = config::load(&config_path, overrides)?;
    let edge = dir.join("edge.token");
    if !edge.exists() {
        let store = Store::open(&config.database)
            .with_context(|| format!("failed to open {}", config.database.display()))?;
        let secret = create_service_token(&store, "embedded-edge", ServiceTokenKind::Edge)?;
        write_file(&edge, format!("{}\n", secret.expose()).as_bytes(), 0o600)?;
    }
    tracing::info!(dir = %dir.display(), "embedded mode");
    Ok(config)
}

const CONFIG: &str = r#"# Written by `gatehouse-identity serve --embedded`; edit freely.
listen = "127.0.0.1:8080"
database = "identity.db"
admin_token_file = "admin.token"

[[providers]]
id = "local"
kind = "local"
display_name = "Local accounts"
users_file = "users.toml"
"#;

fn sample_users() -> anyhow::Result<(String, String)> {
    let mut file = String::from("# Local accounts (see `gatehouse-identity hash-password`).\n");
    let mut passwords = String::new();
    for (email, name, groups) in SAMPLE_USERS {
        let password = crate::flows::random_token(12);
        let hash = crate::local_idp::users::hash_password(&password)?;
        let groups: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
        file.push_str(&format!(
            "\n[[users]]\nemail = {email:?}\nname = {name:?}\ngroups = [{}]\npassword_hash = {hash:?}\n",
            groups.join(", ")
        ));
        passwords.push_str(&format!("{email} {password}\n"));
    }
    Ok((file, passwords))
}

/// Creates a service token; the returned secret is shown once and stored only as a hash.
///
/// # Errors
/// Store failures.
pub(crate) fn create_service_token(
    store: &Store,
    name: &str,
    kind: ServiceTokenKind,
) -> anyhow::Result<ServiceTokenSecret> {
    let id = ServiceTokenId::from_random(crate::flows::random_bytes());
    let secret = ServiceTokenSecret::generate(id.as_str(), &crate::flows::random_bytes())?;
    let now = crate::keys::to_store_time(crate::flows::unix_now());
    store.create_service_token(
        &NewServiceToken {
            id,
            name: name.to_owned(),
            kind,
            secret_hash: secret.hash().0.to_vec(),
            expires_at: None,
        },
        now,
    )?;
    Ok(secret)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("failed to write {}", path.display()))
}
