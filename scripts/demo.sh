#!/usr/bin/env bash
# The quick-start demo: builds the binaries, then runs client → edge → destination in three
# throwaway network namespaces, shows one allowed and one denied request, `wg show` on both
# ends, and cleans everything up. Needs root (TUN devices and namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s.%N)

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root for network namespaces and TUN devices (try: sudo bash scripts/demo.sh)" >&2
    exit 1
fi
for tool in ip python3 curl; do
    command -v "$tool" >/dev/null || { echo "demo: missing $tool (apt-get install -y iproute2 python3 curl)" >&2; exit 1; }
done

echo "== building (cargo build --release --bins)"
cargo build --release --bins -q
bin=target/release

suffix=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
ns_client="ghdemo-c-$suffix" ns_edge="ghdemo-e-$suffix" ns_dest="ghdemo-d-$suffix"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "$ns_client" "$ns_edge" "$ns_dest"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== topology: $ns_client (10.201.0.2) ─ $ns_edge (10.201.0.1 | 10.202.0.1) ─ $ns_dest (10.202.0.2)"
for ns in "$ns_client" "$ns_edge" "$ns_dest"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "c$suffix" type veth peer name "e$suffix"
ip link set "c$suffix" netns "$ns_client"; ip link set "e$suffix" netns "$ns_edge"
ip link add "d$suffix" type veth peer name "f$suffix"
ip link set "d$suffix" netns "$ns_dest"; ip link set "f$suffix" netns "$ns_edge"
ip -n "$ns_client" addr add 10.201.0.2/24 dev "c$suffix"; ip -n "$ns_client" link set "c$suffix" up
ip -n "$ns_edge" addr add 10.201.0.1/24 dev "e$suffix"; ip -n "$ns_edge" link set "e$suffix" up
ip -n "$ns_edge" addr add 10.202.0.1/24 dev "f$suffix"; ip -n "$ns_edge" link set "f$suffix" up
ip -n "$ns_dest" addr add 10.202.0.2/24 dev "d$suffix"; ip -n "$ns_dest" link set "d$suffix" up
ip -n "$ns_dest" route add 100.64.0.0/10 via 10.202.0.1
ip netns exec "$ns_edge" sysctl -qw net.ipv4.ip_forward=1

edge_key=$("$bin/gatehouse-edge" genkey)
client_key=$("$bin/gatehouse" genkey)
client_pub=$(echo "$client_key" | "$bin/gatehouse" pubkey)
echo "$client_key" > "$work/client.key"
cat > "$work/edge.toml" <<TOML
private_key = "$edge_key"
listen = "0.0.0.0:51820"
interface = "ghe-$suffix"
address = ["100.64.0.1/10"]
endpoint = "10.201.0.1:51820"

[[peers]]
name = "demo-laptop"
public_key = "$client_pub"
addresses = ["100.64.0.2/32"]

[[policy]]
action = "allow"
peers = ["demo-laptop"]
destinations = ["10.202.0.2/32"]
protocol = "tcp"
ports = "8080"
TOML
"$bin/gatehouse-edge" client-config --config "$work/edge.toml" --peer demo-laptop \
    --private-key-file "$work/client.key" --allowed-ip 10.202.0.0/24 > "$work/client.conf"

mkdir -p "$work/www"; echo "hello through gatehouse" > "$work/www/index.html"
ip netns exec "$ns_dest" python3 -m http.server 8080 --bind 10.202.0.2 --directory "$work/www" \
    >/dev/null 2>&1 & pids+=($!)
ip netns exec "$ns_dest" python3 -m http.server 9090 --bind 10.202.0.2 --directory "$work/www" \
    >/dev/null 2>&1 & pids+=($!)
GATEHOUSE_LOG=info,gatehouse_edge=debug ip netns exec "$ns_edge" "$bin/gatehouse-edge" run \
    --config "$work/edge.toml" > "$work/edge.log" 2>&1 & pids+=($!)
ip netns exec "$ns_client" "$bin/gatehouse" up --config "$work/client.conf" \
    --interface "ghc-$suffix" > "$work/client.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do
    ip netns exec "$ns_dest" bash -c 'exec 3<>/dev/tcp/10.202.0.2/8080' 2>/dev/null &&
    [ -S "/var/run/wireguard/ghc-$suffix.sock" ] && [ -S "/var/run/wireguard/ghe-$suffix.sock" ] && break
    sleep 0.1
done

echo "== allowed: GET http://10.202.0.2:8080/ through the tunnel"
body=$(ip netns exec "$ns_client" curl -sS -m 10 --retry 3 --retry-all-errors http://10.202.0.2:8080/)
echo "   $body"
first=$(date +%s.%N)
echo "== denied: GET http://10.202.0.2:9090/ (no rule allows port 9090; the edge answers with a reset)"
if ip netns exec "$ns_client" curl -sS -m 5 http://10.202.0.2:9090/ 2>&1 | sed 's/^/   /'; then
    echo "demo: the denied request succeeded; this is a bug" >&2; exit 1
fi
echo "== edge decisions (DEBUG log)"
grep -E "flow (allow|deny)" "$work/edge.log" | sed -E 's/\x1b\[[0-9;]*m//g; s/^/   /'
echo "== wg show on the client (stock wireguard-tools over Gatehouse's UAPI)"
ip netns exec "$ns_client" wg show "ghc-$suffix" 2>/dev/null | sed 's/^/   /' \
    || ip netns exec "$ns_client" "$bin/gatehouse" status --interface "ghc-$suffix" | sed 's/^/   /'
echo "demo: first_allowed_request_s=$(python3 -c "print(round($first - $start, 2))")"
