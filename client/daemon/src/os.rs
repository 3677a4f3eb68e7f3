//! Desktop network configuration: the tunnel's addresses and the routes that send traffic into
//! it, undone when the [`RouteGuard`] drops.
//!
//! Routes go into their own table, selected by a policy rule for every packet that does not
//! carry the tunnel socket's firewall mark, with the main table consulted first for everything
//! but its default route. This is wg-quick's scheme: the edge's own endpoint stays reachable
//! outside the tunnel, also when it roams or the default gateway changes.

use anyhow::Context as _;
use client_core::routes::RoutePlan;
use ipnet::IpNet;
use wg_driver::iproute::{self, ip, ip_quiet};

/// wg-quick's default: the socket's fwmark and the routing table share this number.
pub const DEFAULT_TABLE: u32 = 51820;
/// Rule priorities, below the kernel's `main` rule (32766).
const PRIO_SUPPRESS: &str = "32760";
const PRIO_TUNNEL: &str = "32761";

/// Undoes the routes and rules on drop.
pub struct RouteGuard {
    table: String,
    families: Vec<&'static str>,
}

/// Assigns `addresses` to `interface`.
///
/// # Errors
/// An address `ip` refuses.
pub fn add_addresses(interface: &str, addresses: &[IpNet]) -> anyhow::Result<()> {
    for address in addresses {
        iproute::add_address(interface, &address.to_string())?;
    }
    Ok(())
}

/// Installs `plan` through `interface` in table `table`, with the rules that keep packets marked
/// `table` (the tunnel's own) outside it.
///
/// # Errors
/// `ip` refusing a route or rule; what was installed is removed again.
pub fn install_routes(interface: &str, plan: &RoutePlan, table: u32) -> anyhow::Result<RouteGuard> {
    let table_text = table.to_string();
    let mut guard = RouteGuard {
        table: table_text.clone(),
        families: Vec::new(),
    };
    let v4: Vec<String> = plan.v4.iter().map(ToString::to_string).collect();
    let v6: Vec<String> = plan.v6.iter().map(ToString::to_string).collect();
    for (family, prefixes) in [("-4", v4), ("-6", v6)] {
        if prefixes.is_empty() {
            continue;
        }
        remove_rules(family, &table_text);
        guard.families.push(family);
        for prefix in &prefixes {
            ip(&[
                family,
                "route",
                "replace",
                prefix,
                "dev",
                interface,
                "table",
                &table_text,
            ])
            .context("failed to add a tunnel route")?;
        }
        ip(&[
            family,
            "rule",
            "add",
            "not",
            "fwmark",
            &table_text,
            "table",
            &table_text,
            "priority",
            PRIO_TUNNEL,
        ])
        .context("failed to add the tunnel routing rule")?;
        ip(&[
            family,
            "rule",
            "add",
            "table",
            "main",
            "suppress_prefixlength",
            "0",
            "priority",
            PRIO_SUPPRESS,
        ])
        .context("failed to add the main-table rule")?;
    }
    Ok(guard)
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        for family in &self.families {
            remove_rules(family, &self.table);
            ip_quiet(&[family, "route", "flush", "table", &self.table]);
        }
    }
}

/// Removes our two rules for `family` (left behind by a daemon that was killed).
fn remove_rules(family: &str, table: &str) {
    ip_quiet(&[
        family,
        "rule",
        "del",
        "not",
        "fwmark",
        table,
        "table",
        table,
        "priority",
        PRIO_TUNNEL,
    ]);
    ip_quiet(&[
        family,
        "rule",
        "del",
        "table",
        "main",
        "suppress_prefixlength",
        "0",
        "priority",
        PRIO_SUPPRESS,
    ]);
}
