//! The kernel rules that hand WireGuard clients' TCP flows and UDP datagrams to connector
//! routes to the edge's transparent listener and UDP socket ([`crate::udp_flows`]): an nftables table of its own (`inet gatehouse_tproxy`) and a policy
//! routing rule that delivers marked packets locally.
//!
//! A decrypted packet the edge core allowed is written to the TUN device; the kernel receives it
//! there. If its destination is in a connector's CIDR route, the `prerouting` rule marks it
//! `0x7844` and TPROXYs it to the listener port; `ip rule fwmark 0x7844 lookup 7844` with
//! `local 0.0.0.0/0 dev lo` in table 7844 makes the kernel accept it as local, so the kernel's
//! own TCP stack terminates the client's connection on a socket with `IP_TRANSPARENT`, whose
//! local address is the original destination. Replies leave that socket toward the client's
//! tunnel address and go back into the TUN by the ordinary route.
//!
//! The text of the rules is built by pure functions ([`ruleset`], [`ip_setup`],
//! [`ip_teardown`]); [`Tproxy`] runs them with `nft -f -` and `ip` and removes everything in
//! `Drop`.

use anyhow::{bail, Context as _};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The nftables table the edge owns (family `inet`); nothing else is touched.
pub(crate) const TABLE: &str = "gatehouse_tproxy";
/// The packet mark of flows handed to the transparent listener ("7844", the connector port).
pub(crate) const FWMARK: u32 = 0x7844;
/// The policy routing table that routes marked packets to `lo`.
pub(crate) const ROUTE_TABLE: u32 = 7844;

/// The nft script that replaces the table with a TCP and a UDP TPROXY rule per address family for
/// `routes` arriving on `interface` (the edge's TUN). Loaded with `nft -f -`, it is atomic: the
/// first two lines make sure the table exists and then delete it, in the same transaction as
/// the new one. Overlapping routes are merged (nft refuses overlapping set elements).
pub(crate) fn ruleset(interface: &str, port: u16, routes: &BTreeSet<IpNet>) -> String {
    let all: Vec<IpNet> = routes.iter().copied().collect();
    let merged = IpNet::aggregate(&all);
    let v4: Vec<String> = merged
        .iter()
        .filter(|n| matches!(n, IpNet::V4(_)))
        .map(ToString::to_string)
        .collect();
    let v6: Vec<String> = merged
        .iter()
        .filter(|n| matches!(n, IpNet::V6(_)))
        .map(ToString::to_string)
        .collect();
    let mut text = format!(
        "table inet {TABLE} {{}}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority mangle; policy accept;\n"
    );
    for (family, nets) in [("ip", &v4), ("ip6", &v6)] {
        if nets.is_empty() {
            continue;
        }
        for proto in ["tcp", "udp"] {
            text.push_str(&format!(
                "\t\tiifname \"{interface}\" meta l4proto {proto} {family} daddr {{ {} }} \
                 meta mark set {FWMARK:#010x} tproxy {family} to :{port} accept\n",
                nets.join(", ")
            ));
        }
    }
    text.push_str("\t}\n}\n");
    text
}

/// The nft script that removes the table.
pub(crate) fn teardown_script() -> String {
    format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n")
}

/// `ip` invocations that deliver marked packets locally, IPv4 then IPv6. Each rule is deleted
/// first (quietly, by the caller) so that a crashed run leaves no duplicate behind.
pub(crate) fn ip_setup() -> Vec<Vec<String>> {
    let mark = format!("{FWMARK:#x}");
    let table = ROUTE_TABLE.to_string();
    let mut commands = Vec::new();
    for (family, any) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
        commands.push(args(&[
            family, "rule", "add", "fwmark", &mark, "lookup", &table,
        ]));
        commands.push(args(&[
            family, "route", "replace", "local", any, "dev", "lo", "table", &table,
        ]));
    }
    commands
}

/// `ip` invocations that undo [`ip_setup`].
pub(crate) fn ip_teardown() -> Vec<Vec<String>> {
    let mark = format!("{FWMARK:#x}");
    let table = ROUTE_TABLE.to_string();
    let mut commands = Vec::new();
    for (family, any) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
        commands.push(args(&[
            family, "rule", "del", "fwmark", &mark, "lookup", &table,
        ]));
        commands.push(args(&[
            family, "route", "del", "local", any, "dev", "lo", "table", &table,
        ]));
    }
    commands
}

/// The installed rules; removed on `Drop`.
pub(crate) struct Tproxy {
    interface: String,
    port: u16,
    routes: BTreeSet<IpNet>,
}

impl Tproxy {
    /// Installs the policy routing rules and an empty table.
    ///
    /// # Errors
    /// `nft` or `ip` fail for IPv4 (IPv6 failures are logged: the host may have IPv6 off), or
    /// the interface name could not be quoted in an nft script.
    pub(crate) fn install(interface: &str, port: u16) -> anyhow::Result<Self> {
        if !interface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("interface name {interface:?} cannot be used in nftables rules");
        }
        // Leftovers of a run that did not exit cleanly.
        for command in ip_teardown() {
            run_ip_quiet(&command);
        }
        for command in ip_setup() {
            let v6 = command.first().is_some_and(|f| f == "-6");
            match run_ip(&command) {
                Ok(()) => {}
                Err(e) if v6 => tracing::warn!("IPv6 connector routes unavailable: {e:#}"),
                Err(e) => return Err(e),
            }
        }
        let tproxy = Self {
            interface: interface.to_string(),
            port,
            routes: BTreeSet::new(),
        };
        nft(&ruleset(interface, port, &tproxy.routes))?;
        Ok(tproxy)
    }

    /// Adds `routes` to the captured destinations, reloading the table if any is new; returns
    /// whether it changed.
    ///
    /// Routes are never removed while the edge runs: a flow to a connector's network while the
    /// connector is away is terminated here and reset, rather than falling through to the
    /// edge's own routing table and leaving toward whatever that network is on the edge's side.
    ///
    /// # Errors
    /// `nft` failed; the previous table stays in force.
    pub(crate) fn add_routes(
        &mut self,
        routes: impl IntoIterator<Item = IpNet>,
    ) -> anyhow::Result<bool> {
        let mut next = self.routes.clone();
        next.extend(routes.into_iter().map(|n| n.trunc()));
        if next == self.routes {
            return Ok(false);
        }
        nft(&ruleset(&self.interface, self.port, &next))?;
        self.routes = next;
        Ok(true)
    }
}

impl Drop for Tproxy {
    fn drop(&mut self) {
        if let Err(e) = nft(&teardown_script()) {
            tracing::warn!("failed to remove nftables table {TABLE}: {e:#}");
        }
        for command in ip_teardown() {
            run_ip_quiet(&command);
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn run_ip(command: &[String]) -> anyhow::Result<()> {
    let refs: Vec<&str> = command.iter().map(String::as_str).collect();
    wg_driver::iproute::ip(&refs)
}

fn run_ip_quiet(command: &[String]) {
    let refs: Vec<&str> = command.iter().map(String::as_str).collect();
    wg_driver::iproute::ip_quiet(&refs);
}

/// Runs `nft -f -` with `script` on stdin.
fn nft(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to run nft (is nftables installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .context("failed to write to nft")?;
    }
    let output = child.wait_with_output().context("failed to wait for nft")?;
    if !output.status.success() {
        bail!(
            "nft failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> BTreeSet<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn no_routes_is_an_empty_chain() {
        assert_eq!(
            ruleset("ghe0", 7845, &BTreeSet::new()),
            "table inet gatehouse_tproxy {}\n\
             delete table inet gatehouse_tproxy\n\
             table inet gatehouse_tproxy {\n\
             \tchain prerouting {\n\
             \t\ttype filter hook prerouting priority mangle; policy accept;\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn routes_become_a_tcp_and_a_udp_rule_per_family_with_overlaps_merged() {
        let text = ruleset(
            "ghe0",
            7845,
            &nets(&[
                "10.99.0.0/24",
                "10.0.0.0/8",
                "192.168.1.0/24",
                "fd00:1::/64",
            ]),
        );
        assert_eq!(
            text,
            "table inet gatehouse_tproxy {}\n\
             delete table inet gatehouse_tproxy\n\
             table inet gatehouse_tproxy {\n\
             \tchain prerouting {\n\
             \t\ttype filter hook prerouting priority mangle; policy accept;\n\
             \t\tiifname \"ghe0\" meta l4proto tcp ip daddr { 10.0.0.0/8, 192.168.1.0/24 } \
             meta mark set 0x00007844 tproxy ip to :7845 accept\n\
             \t\tiifname \"ghe0\" meta l4proto udp ip daddr { 10.0.0.0/8, 192.168.1.0/24 } \
             meta mark set 0x00007844 tproxy ip to :7845 accept\n\
             \t\tiifname \"ghe0\" meta l4proto tcp ip6 daddr { fd00:1::/64 } \
             meta mark set 0x00007844 tproxy ip6 to :7845 accept\n\
             \t\tiifname \"ghe0\" meta l4proto udp ip6 daddr { fd00:1::/64 } \
             meta mark set 0x00007844 tproxy ip6 to :7845 accept\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn teardown_deletes_only_the_own_table() {
        assert_eq!(
            teardown_script(),
            "table inet gatehouse_tproxy {}\ndelete table inet gatehouse_tproxy\n"
        );
    }

    #[test]
    fn ip_rules_route_the_mark_to_lo_and_teardown_mirrors_them() {
        let setup: Vec<String> = ip_setup().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            setup,
            [
                "-4 rule add fwmark 0x7844 lookup 7844",
                "-4 route replace local 0.0.0.0/0 dev lo table 7844",
                "-6 rule add fwmark 0x7844 lookup 7844",
                "-6 route replace local ::/0 dev lo table 7844",
            ]
        );
        let teardown: Vec<String> = ip_teardown().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            teardown,
            [
                "-4 rule del fwmark 0x7844 lookup 7844",
                "-4 route del local 0.0.0.0/0 dev lo table 7844",
                "-6 rule del fwmark 0x7844 lookup 7844",
                "-6 route del local ::/0 dev lo table 7844",
            ]
        );
    }
}
