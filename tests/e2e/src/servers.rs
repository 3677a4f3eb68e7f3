//! Small servers for the destination side of a tunnel and the matching clients, all run inside a
//! namespace with tools present on every test host (python3; curl when installed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::netns::Netns;
use crate::proc::Proc;

/// How long a server may take to bind and say so.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest UDP payload [`udp_echo`] takes: it travels hex-encoded in one argument, and Linux
/// caps one argument at 128 KiB (`MAX_ARG_STRLEN`).
pub const MAX_UDP_ECHO_PAYLOAD: usize = 60_000;

/// An HTTP server (`python3 -m http.server`) serving one file with a known body at `/body`.
#[derive(Debug)]
pub struct HttpServer {
    proc: Proc,
    url: String,
}

impl HttpServer {
    /// Serves `body` at `http://<addr>:<port>/body` from `netns`. `dir` holds the served file and
    /// the server's log.
    ///
    /// # Errors
    /// If the server does not start listening within 10 s.
    pub fn start(
        netns: &Netns,
        dir: &Path,
        addr: &str,
        port: u16,
        body: &[u8],
    ) -> anyhow::Result<HttpServer> {
        let www = dir.join(format!("www-{port}-{}", crate::random_suffix(4)));
        std::fs::create_dir_all(&www)
            .with_context(|| format!("failed to create {}", www.display()))?;
        std::fs::write(www.join("body"), body).context("failed to write the body")?;
        let www = www.to_string_lossy().into_owned();
        let port_text = port.to_string();
        let log = dir.join(format!("http-{port}.log"));
        let args = [
            "-u",
            "-m",
            "http.server",
            "--bind",
            addr,
            "--directory",
            &www,
            &port_text,
        ];
        let mut proc = netns.spawn("python3", &args, &log)?;
        proc.wait_for_log("Serving HTTP", READY_TIMEOUT)?;
        Ok(HttpServer {
            proc,
            url: format!("http://{}:{port}/body", bracket(addr)),
        })
    }

    /// The URL of the body.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server process (its log lists the requests).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// A UDP echo server: every datagram is sent back to its source.
#[derive(Debug)]
pub struct UdpEcho {
    proc: Proc,
}

const UDP_ECHO_SERVER: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, port))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"#;

impl UdpEcho {
    /// Echoes on `addr:port` in `netns`; the log goes to `dir`.
    ///
    /// # Errors
    /// If the server does not bind within 10 s.
    pub fn start(netns: &Netns, dir: &Path, addr: &str, port: u16) -> anyhow::Result<UdpEcho> {
        let log = dir.join(format!("udp-echo-{port}.log"));
        let port = port.to_string();
        let mut proc = netns.spawn("python3", &["-u", "-c", UDP_ECHO_SERVER, addr, &port], &log)?;
        proc.wait_for_log("ready", READY_TIMEOUT)?;
        Ok(UdpEcho { proc })
    }

    /// The server process.
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// Fetches `url` from inside `netns` and returns the body; fails on an HTTP error status.
/// Uses `curl` when installed, else python3's urllib.
///
/// # Errors
/// On connection failure, HTTP error or timeout, with the client's stderr.
pub fn http_get(netns: &Netns, url: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let secs = format!("{:.3}", timeout.as_secs_f64());
    let output = if find_in_path("curl").is_some() {
        netns.exec(&["curl", "-sS", "--fail", "--max-time", &secs, "-o", "-", url])
    } else {
        netns.exec(&["python3", "-c", HTTP_GET_CLIENT, url, &secs])
    };
    if !output.status.success() {
        bail!(
            "GET {url} from {} failed ({}): {}",
            netns.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

const HTTP_GET_CLIENT: &str = r#"
import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read())
"#;

/// Sends `payload` to the UDP echo server at `addr:port` from inside `netns` and returns the
/// first reply. Sends up to three times within `timeout`, since the first datagram may wait for
/// a tunnel handshake.
///
/// # Errors
/// If no reply arrives within `timeout`, or `payload` exceeds [`MAX_UDP_ECHO_PAYLOAD`].
pub fn udp_echo(
    netns: &Netns,
    addr: &str,
    port: u16,
    payload: &[u8],
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    if payload.len() > MAX_UDP_ECHO_PAYLOAD {
        bail!(
            "payload of {} bytes exceeds {MAX_UDP_ECHO_PAYLOAD}",
            payload.len()
        );
    }
    let hex: String = payload.iter().map(|byte| format!("{byte:02x}")).collect();
    let port = port.to_string();
    let secs = format!("{:.3}", timeout.as_secs_f64());
    let args = ["python3", "-c", UDP_ECHO_CLIENT, addr, &port, &hex, &secs];
    let output = netns.exec(&args);
    if !output.status.success() {
        bail!(
            "UDP echo to {addr}:{port} from {} failed ({}): {}",
            netns.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    decode_hex(String::from_utf8_lossy(&output.stdout).trim())
}

const UDP_ECHO_CLIENT: &str = r#"
import socket, sys
host, port, data, timeout = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout / 3)
for _ in range(3):
    s.sendto(data, (host, port))
    try:
        reply, _ = s.recvfrom(65535)
    except socket.timeout:
        continue
    sys.stdout.write(reply.hex())
    sys.exit(0)
sys.exit("no echo within %ss" % timeout)
"#;

/// `program` on `$PATH`, if any.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn bracket(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    }
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    if text.len() % 2 != 0 {
        bail!("odd-length hex from the echo client");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .context("bad hex from the echo client")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_hex() {
        assert_eq!(decode_hex("00ff10").ok(), Some(vec![0, 255, 16]));
        assert!(decode_hex("0").is_err());
        assert!(decode_hex("zz").is_err());
    }

    #[test]
    fn brackets_ipv6_hosts_only() {
        assert_eq!(bracket("fd00::1"), "[fd00::1]");
        assert_eq!(bracket("10.0.0.1"), "10.0.0.1");
    }
}
