//! Parsing `wg show <interface> dump`, the tab-separated form of a WireGuard interface's state.

use anyhow::{bail, Context};

/// One peer line of `wg show <interface> dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPeer {
    /// Base64 public key.
    pub public_key: String,
    /// `ip:port` last seen or configured; `None` for `(none)`.
    pub endpoint: Option<String>,
    /// Allowed IPs in CIDR notation; empty for `(none)`.
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the latest handshake; 0 for never.
    pub latest_handshake: u64,
    /// Bytes received from this peer (on the wire, including handshakes).
    pub rx_bytes: u64,
    /// Bytes sent to this peer (on the wire, including handshakes).
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds; `None` for `off`.
    pub persistent_keepalive: Option<u16>,
}

/// Parses the output of `wg show <interface> dump`: the interface line first (private key,
/// public key, listen port, fwmark), then one line per peer with eight tab-separated fields.
///
/// # Errors
/// On a peer line without eight fields or with a malformed number.
pub fn parse_dump(text: &str) -> anyhow::Result<Vec<DumpPeer>> {
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(parse_peer)
        .collect()
}

fn parse_peer(line: &str) -> anyhow::Result<DumpPeer> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [public_key, _psk, endpoint, allowed_ips, handshake, rx, tx, keepalive] = fields[..] else {
        bail!("peer line with {} fields, want 8: {line:?}", fields.len());
    };
    let number = |name: &str, value: &str| -> anyhow::Result<u64> {
        value
            .parse()
            .with_context(|| format!("bad {name} {value:?} in {line:?}"))
    };
    Ok(DumpPeer {
        public_key: public_key.to_owned(),
        endpoint: (endpoint != "(none)").then(|| endpoint.to_owned()),
        allowed_ips: if allowed_ips == "(none)" {
            Vec::new()
        } else {
            allowed_ips.split(',').map(str::to_owned).collect()
        },
        latest_handshake: number("latest-handshake", handshake)?,
        rx_bytes: number("transfer-rx", rx)?,
        tx_bytes: number("transfer-tx", tx)?,
        persistent_keepalive: match keepalive {
            "off" => None,
            secs => Some(
                secs.parse()
                    .with_context(|| format!("bad keepalive {secs:?} in {line:?}"))?,
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interface_and_peer_lines() {
        let dump = "cHJpdg==\tcHVi\t51820\toff\n\
                    QUFB\t(none)\t10.0.0.2:51820\t100.70.0.2/32,10.1.0.0/16\t1700000000\t1234\t5678\t25\n\
                    QkJC\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
        let peers = parse_dump(dump).expect("valid dump");
        assert_eq!(
            peers,
            vec![
                DumpPeer {
                    public_key: "QUFB".into(),
                    endpoint: Some("10.0.0.2:51820".into()),
                    allowed_ips: vec!["100.70.0.2/32".into(), "10.1.0.0/16".into()],
                    latest_handshake: 1_700_000_000,
                    rx_bytes: 1234,
                    tx_bytes: 5678,
                    persistent_keepalive: Some(25),
                },
                DumpPeer {
                    public_key: "QkJC".into(),
                    endpoint: None,
                    allowed_ips: vec![],
                    latest_handshake: 0,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    persistent_keepalive: None,
                },
            ]
        );
    }

    #[test]
    fn rejects_short_peer_lines() {
        assert!(parse_dump("iface\tline\n\tonly\tthree").is_err());
    }
}
