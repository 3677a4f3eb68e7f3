//! A minimal UAPI client for `gatehouse status`.

use anyhow::{bail, Context as _};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sends `get=1` and returns the response body (without the errno line).
///
/// # Errors
/// No socket, a timeout, or a non-zero errno.
pub(crate) fn get(socket: &Path) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("failed to connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"get=1\n\n")?;
    let mut body = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.context("failed to read the UAPI response")?;
        if let Some(errno) = line.strip_prefix("errno=") {
            if errno != "0" {
                bail!("UAPI get failed with errno {errno}");
            }
            return Ok(body);
        }
        body.push_str(&line);
        body.push('\n');
    }
    bail!("UAPI response ended without errno")
}

/// Renders a `get=1` body like `wg show`, with keys in base64 and no private key.
pub(crate) fn render_status(interface: &str, body: &str) -> String {
    let mut out = format!("interface: {interface}\n");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut handshake_sec = 0u64;
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "listen_port" => out.push_str(&format!("  listening port: {value}\n")),
            "public_key" => {
                let key = wg::keys::PublicKey::from_hex(value)
                    .map_or_else(|_| value.to_string(), |k| k.to_base64());
                out.push_str(&format!("\npeer: {key}\n"));
            }
            "endpoint" => out.push_str(&format!("  endpoint: {value}\n")),
            "allowed_ip" => out.push_str(&format!("  allowed ip: {value}\n")),
            "last_handshake_time_sec" => handshake_sec = value.parse().unwrap_or(0),
            "rx_bytes" => out.push_str(&format!("  received bytes: {value}\n")),
            "tx_bytes" => {
                out.push_str(&format!("  sent bytes: {value}\n"));
                let handshake = if handshake_sec == 0 {
                    "never".to_string()
                } else {
                    format!("{} seconds ago", now.saturating_sub(handshake_sec))
                };
                out.push_str(&format!("  latest handshake: {handshake}\n"));
            }
            _ => {}
        }
    }
    out
}
