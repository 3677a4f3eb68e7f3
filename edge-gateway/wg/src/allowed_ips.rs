//! Longest-prefix match from inner IP addresses to peers (cryptokey routing, WireGuard §2).

use crate::keys::PublicKey;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Maps allowed-IP prefixes to peers. Host routes (/32, /128), the common case on an edge with
/// one address per device, are found in O(log n); wider prefixes are scanned longest first.
#[derive(Debug, Default)]
pub(crate) struct AllowedIps {
    hosts: BTreeMap<IpAddr, PublicKey>,
    /// Sorted by prefix length, longest first.
    prefixes: Vec<(IpNet, PublicKey)>,
}

impl AllowedIps {
    /// Adds `net` for `peer`; a prefix already held by another peer moves to `peer`, as in
    /// `wg set ... allowed-ips`.
    pub(crate) fn insert(&mut self, net: IpNet, peer: PublicKey) {
        let net = net.trunc();
        if is_host(&net) {
            self.hosts.insert(net.addr(), peer);
            return;
        }
        self.prefixes.retain(|(existing, _)| *existing != net);
        let at = self
            .prefixes
            .partition_point(|(existing, _)| existing.prefix_len() >= net.prefix_len());
        self.prefixes.insert(at, (net, peer));
    }

    /// Removes every prefix of `peer`.
    pub(crate) fn remove_peer(&mut self, peer: &PublicKey) {
        self.hosts.retain(|_, owner| owner != peer);
        self.prefixes.retain(|(_, owner)| owner != peer);
    }

    /// The peer whose allowed IPs contain `addr` with the longest prefix.
    pub(crate) fn lookup(&self, addr: IpAddr) -> Option<&PublicKey> {
        if let Some(peer) = self.hosts.get(&addr) {
            return Some(peer);
        }
        self.prefixes
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|(_, peer)| peer)
    }

    /// The prefixes of `peer`, hosts first.
    pub(crate) fn of_peer(&self, peer: &PublicKey) -> Vec<IpNet> {
        let hosts = self
            .hosts
            .iter()
            .filter(|(_, owner)| *owner == peer)
            .map(|(addr, _)| IpNet::from(*addr));
        let prefixes = self
            .prefixes
            .iter()
            .filter(|(_, owner)| owner == peer)
            .map(|(net, _)| *net);
        hosts.chain(prefixes).collect()
    }
}

fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("valid prefix")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut table = AllowedIps::default();
        table.insert(net("0.0.0.0/0"), key(1));
        table.insert(net("10.0.0.0/8"), key(2));
        table.insert(net("10.1.2.3/32"), key(3));
        let ip = |s: &str| s.parse::<IpAddr>().expect("valid ip");
        assert_eq!(table.lookup(ip("10.1.2.3")), Some(&key(3)));
        assert_eq!(table.lookup(ip("10.9.9.9")), Some(&key(2)));
        assert_eq!(table.lookup(ip("8.8.8.8")), Some(&key(1)));
        assert_eq!(table.lookup(ip("::1")), None);
    }

    #[test]
    fn a_prefix_moves_to_its_new_owner_and_removal_clears_a_peer() {
        let mut table = AllowedIps::default();
        table.insert(net("10.0.0.0/8"), key(1));
        table.insert(net("10.0.0.0/8"), key(2));
        table.insert(net("fd00::1/128"), key(2));
        assert_eq!(table.of_peer(&key(1)), Vec::<IpNet>::new());
        assert_eq!(table.of_peer(&key(2)).len(), 2);
        table.remove_peer(&key(2));
        assert_eq!(table.lookup("10.1.1.1".parse().expect("ip")), None);
    }
}
