//! Admin API (`/admin/v1/…`) and the `gatehouse-identity admin …` command line.

use crate::state::AppState;
use axum::Router;

/// `gatehouse-identity admin …` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {}

/// The admin API routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}

/// Runs an admin command.
///
/// # Errors
/// Whatever the command fails with.
pub(crate) async fn cli(args: AdminArgs) -> anyhow::Result<()> {
    let AdminArgs {} = args;
    anyhow::bail!("admin commands are not implemented yet")
}
