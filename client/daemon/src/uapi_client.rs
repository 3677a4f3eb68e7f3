//! A minimal UAPI client for `gatehouse status`.

use anyhow::{bail, Context as _};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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
