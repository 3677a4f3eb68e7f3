//! `gatehouse-identity`, the Gatehouse control plane: an OpenID Connect relying party to upstream
//! identity providers (plus a small built-in local provider), the OAuth authorization server the
//! `gatehouse` CLI logs in with (device grant, code + PKCE with a loopback redirect), device
//! enrollment, identity's own signed tokens and JWKS, the admin API and the config feed to edges.
//!
//! This crate is the IO driver: HTTP (axum), the SQLite store (`identity-store`), upstream HTTP
//! calls (reqwest), the clock and randomness. Token formats and flow state machines live in the
//! pure crates `identity-claims` and `identity-core`. It is not a general-purpose OIDC provider:
//! the local provider serves identity's own relying party only.

#![cfg_attr(test, allow(clippy::unwrap_used, reason = "tests fail loudly"))]

mod access;
mod admin;
mod auth;
mod cli;
mod config;
mod decisions;
mod embedded;
mod enroll;
mod error;
mod feed;
mod flows;
mod group_sync;
mod html;
mod http;
mod keys;
mod local_idp;
mod oauth;
mod rp;
mod state;
mod tokens;

pub use cli::main;
pub use config::Config;

/// Serves until SIGINT/SIGTERM.
///
/// # Errors
/// Store, bind or serve failures.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .with_context(|| format!("failed to listen on {}", config.listen()))?;
    serve_listener(listener, config).await
}

/// Parses a configuration text (relative paths against `base`), as `serve --config` would.
///
/// # Errors
/// TOML errors, unknown fields, bad values.
pub fn parse_config(text: &str, base: &std::path::Path) -> anyhow::Result<Config> {
    config::parse(text, base, &config::Overrides::default())
}

/// Serves on an already bound listener until SIGINT/SIGTERM (tests bind port 0).
///
/// # Errors
/// Invalid local users file, serve failures.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    config: Config,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let store = identity_store::Store::open(&config.database)
        .with_context(|| format!("failed to open the database {}", config.database.display()))?;
    let state = state::AppState::new(config, store, flows::unix_now())?;
    state.spawn_maintenance();
    group_sync::spawn(&state);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
