//! `gatehouse status`: the saved login (user, device, edge, addresses, posture) and the running
//! tunnel's peers and counters, as text or `--json`.

use crate::{state, uapi_client};
use anyhow::bail;
use client::paths;
use client_core::status::{render_text, LoginStatus, Status, TunnelStatus, STATUS_FORMAT};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    /// The TUN interface name.
    #[arg(long, short, default_value = "gatehouse0", env = "GATEHOUSE_INTERFACE")]
    interface: String,
    /// The state directory of `gatehouse login` (default $XDG_STATE_HOME/gatehouse, else
    /// ~/.local/state/gatehouse).
    #[arg(long, env = "GATEHOUSE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print JSON (field names are stable; see client/README.md).
    #[arg(long)]
    json: bool,
}

/// Prints the status. Fails if there is neither a login nor a running tunnel.
pub(crate) fn status(args: StatusArgs) -> anyhow::Result<()> {
    let dir = match args.state_dir {
        Some(dir) => Some(dir),
        None => state::default_dir().ok(),
    };
    let login = match &dir {
        Some(dir) => state::load_device(dir)?.map(|device| LoginStatus::from_state(&device)),
        None => None,
    };
    let interface = args.interface.as_str();
    let tunnel = match uapi_client::get(&paths::uapi_socket(interface)) {
        Ok(body) => TunnelStatus::from_uapi(interface, &body),
        Err(e) => {
            tracing::debug!(interface, "no tunnel: {e:#}");
            TunnelStatus::down(interface)
        }
    };
    let state_dir = dir.map(|dir| dir.display().to_string());
    if login.is_none() && !tunnel.up {
        bail!(
            "interface {interface} is not up and there is no login in {} (run `gatehouse login`)",
            state_dir.as_deref().unwrap_or("the state directory")
        );
    }
    let status = Status {
        format: STATUS_FORMAT,
        state_dir,
        login,
        tunnel,
    };
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&status)?;
        text.push('\n');
        text
    } else {
        render_text(&status, state::unix_now())
    };
    wg_driver::process::write_stdout(&text)
}
