#!/usr/bin/env bash
# The quick-start demo: builds the binaries, then runs a complete local deployment in three
# throwaway network namespaces: gatehouse-identity with its built-in provider and SQLite
# (embedded defaults), a sample policy for two users, an edge that takes its peers and policy
# from identity, and a laptop that logs alice in (`gatehouse login`, device code; a small script
# plays the browser) and connects with the profile identity hands out (`gatehouse connect`).
# It shows one request allowed and one denied with the reason, the decisions in identity's
# audit, and cleans everything up (at once in CI, on Ctrl-C when run from a terminal).
# Needs root (TUN devices and namespaces).
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
edge_pub=$(echo "$edge_key" | "$bin/gatehouse" pubkey)
identity_url=http://10.201.0.1:8080
state="$work/identity"; mkdir -m 700 "$state"
cat > "$state/identity.toml" <<TOML
listen = "10.201.0.1:8080"
database = "identity.db"
admin_token_file = "admin.token"
routes = ["10.202.0.0/24"]

[[edges]]
name = "demo-edge"
endpoint = "10.201.0.1:51820"
public_key = "$edge_pub"
region = "local"

[[providers]]
id = "local"
kind = "local"
display_name = "Local accounts"
users_file = "users.toml"
TOML
echo "== identity: gatehouse-identity serve --embedded (built-in provider, SQLite) on $identity_url"
ip netns exec "$ns_edge" "$bin/gatehouse-identity" serve --embedded "$state" --listen 10.201.0.1:8080 \
    > "$work/identity.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    ip netns exec "$ns_edge" curl -sf -m 1 "$identity_url/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
admin() { ip netns exec "$ns_edge" "$bin/gatehouse-identity" admin --url "$identity_url" --token-file "$state/admin.token" "$@"; }

cat > "$work/policy.toml" <<'TOML'
version = 1
[[applications]]
name = "hello"
destinations = [{ cidr = "10.202.0.2/32", ports = [8080], protocol = "tcp" }]
[[applications.policies]]
name = "staff"
action = "allow"
include = [{ email_domain = "example.com" }]

[[applications]]
name = "payroll"
destinations = [{ cidr = "10.202.0.2/32", ports = [9090], protocol = "tcp" }]
[[applications.policies]]
name = "finance-only"
action = "allow"
include = [{ group = "finance" }]
TOML
echo "== policy: alice and bob (example.com) may open hello (:8080); only group finance payroll (:9090)"
admin policy apply "$work/policy.toml" >/dev/null

cat > "$work/edge.toml" <<TOML
private_key = "$edge_key"
listen = "0.0.0.0:51820"
interface = "ghe-$suffix"
address = ["100.64.0.1/10"]

[identity]
url = "$identity_url"
token_file = "$state/edge.token"
TOML
mkdir -p "$work/www"; echo "hello through gatehouse" > "$work/www/index.html"
ip netns exec "$ns_dest" python3 -m http.server 8080 --bind 10.202.0.2 --directory "$work/www" \
    >/dev/null 2>&1 & pids+=($!)
ip netns exec "$ns_dest" python3 -m http.server 9090 --bind 10.202.0.2 --directory "$work/www" \
    >/dev/null 2>&1 & pids+=($!)
echo "== edge: peers and policy from identity's feed"
GATEHOUSE_LOG=info,gatehouse_edge=debug ip netns exec "$ns_edge" "$bin/gatehouse-edge" run \
    --config "$work/edge.toml" > "$work/edge.log" 2>&1 & pids+=($!)

echo "== laptop: gatehouse login --identity $identity_url (device code; alice signs in)"
password=$(sed -n 's/^alice@example.com //p' "$state/passwords.txt")
ip netns exec "$ns_client" env GATEHOUSE_LOGIN_OPEN="$PWD/scripts/demo/browser.py" \
    DEMO_EMAIL=alice@example.com DEMO_PASSWORD="$password" \
    "$bin/gatehouse" login --identity "$identity_url" --state-dir "$work/alice" 2>&1 \
    | grep -v -i "token" | sed 's/^/   /'
echo "== laptop: gatehouse connect (the profile from identity: address, edge, routes)"
ip netns exec "$ns_client" "$bin/gatehouse" connect --state-dir "$work/alice" \
    --interface "ghc-$suffix" > "$work/client.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    grep -q "identity peers applied peers=1" "$work/edge.log" 2>/dev/null &&
    [ -S "/var/run/wireguard/ghc-$suffix.sock" ] && break
    sleep 0.1
done

echo "== allowed: GET http://10.202.0.2:8080/ (application hello)"
body=$(ip netns exec "$ns_client" curl -sS -m 10 --retry 5 --retry-all-errors http://10.202.0.2:8080/)
echo "   $body"
first=$(date +%s.%N)
echo "== denied: GET http://10.202.0.2:9090/ (application payroll: alice is in engineering and admins, not finance; the edge resets it)"
if ip netns exec "$ns_client" curl -sS -m 5 http://10.202.0.2:9090/ 2>&1 | sed 's/^/   /'; then
    echo "demo: the denied request succeeded; this is a bug. The edge's log:" >&2
    sed 's/^/   /' "$work/edge.log" >&2; exit 1
fi
echo "== why (gatehouse-identity admin policy explain)"
admin policy explain --email alice@example.com --ip 10.202.0.2 --port 9090 --protocol tcp \
    | python3 -c 'import json,sys; print("   " + json.load(sys.stdin).get("explanation", ""))' || true
echo "== decisions in identity's audit (gatehouse-identity admin decisions)"
for _ in $(seq 30); do
    admin decisions --limit 5 2>/dev/null | grep -q 9090 && break
    sleep 0.2
done
admin decisions --limit 5 | sed 's/^/   /'
echo "== gatehouse status on the laptop"
ip netns exec "$ns_client" "$bin/gatehouse" status --state-dir "$work/alice" \
    --interface "ghc-$suffix" | sed -n '1,12p' | sed 's/^/   /'
echo "demo: first_allowed_request_s=$(python3 -c "print(round($first - $start, 2))")"
echo "demo: browser access without the client (clientless) is not built yet; from the laptop namespace:"
echo "      sudo ip netns exec $ns_client curl http://10.202.0.2:8080/"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    echo "demo: running; press Ctrl-C to stop and clean up"
    while sleep 3600; do :; done
fi
