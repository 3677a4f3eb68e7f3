#!/usr/bin/env bash
# The quick-start demo: builds the binaries, then runs a complete local deployment in three
# throwaway network namespaces:
#   edge ns:   gatehouse-identity (built-in provider, SQLite; embedded defaults) and
#              gatehouse-edge (peers, policy and keys from identity's feed)
#   origin ns: gatehouse-connector (dials out to the edge, credential from identity) and two
#              sample apps, hello.demo.gatehouse.test and payroll.demo.gatehouse.test
#   client ns: a laptop that logs alice in (`gatehouse login`, device code; a small script plays
#              the browser) and connects with the profile identity hands out (`gatehouse connect`)
# It shows one request allowed through the connector and one denied (the edge's 403 page with a
# reference id) with the reason, then the same app in a browser without the client (clientless:
# sign-in at identity, HTTPS at the edge), prints how to open it in a real browser, and cleans
# everything up (at once in CI or without a terminal, on Ctrl-C otherwise).
# Needs root (TUN devices, namespaces, nftables).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s.%N)

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root for network namespaces, TUN devices and nftables (try: sudo bash scripts/demo.sh)" >&2
    exit 1
fi
for tool in ip nft python3 curl; do
    command -v "$tool" >/dev/null || { echo "demo: missing $tool (apt-get install -y iproute2 nftables python3 curl)" >&2; exit 1; }
done

echo "== building (cargo build --release --bins)"
cargo build --release --bins -q
bin=target/release

suffix=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
ns_client="ghdemo-c-$suffix" ns_edge="ghdemo-e-$suffix" ns_origin="ghdemo-o-$suffix"
domain=demo.gatehouse.test hello=hello.demo.gatehouse.test payroll=payroll.demo.gatehouse.test
work=$(mktemp -d)
pids=()
cleanup() {
    # Runs to the end even if the terminal is gone (a second Ctrl-C, a hang-up, a closed pty).
    trap - EXIT; trap '' INT TERM HUP; set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "$ns_client" "$ns_edge" "$ns_origin"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "/etc/netns/$ns_client" "$work"
}
trap cleanup EXIT
trap '{ echo; echo "demo: stopping"; } 2>/dev/null; exit 130' INT TERM HUP
fail() {
    echo "demo: $1; this is a bug. The logs:" >&2
    for log in edge connector identity; do echo "--- $log" >&2; tail -n 40 "$work/$log.log" >&2; done
    exit 1
}

echo "== topology: $ns_client (10.201.0.2) ─ $ns_edge (10.201.0.1 | 10.202.0.1) ─ $ns_origin (10.202.0.2)"
for ns in "$ns_client" "$ns_edge" "$ns_origin"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "c$suffix" type veth peer name "e$suffix"
ip link set "c$suffix" netns "$ns_client"; ip link set "e$suffix" netns "$ns_edge"
ip link add "o$suffix" type veth peer name "f$suffix"
ip link set "o$suffix" netns "$ns_origin"; ip link set "f$suffix" netns "$ns_edge"
ip -n "$ns_client" addr add 10.201.0.2/24 dev "c$suffix"; ip -n "$ns_client" link set "c$suffix" up
ip -n "$ns_edge" addr add 10.201.0.1/24 dev "e$suffix"; ip -n "$ns_edge" link set "e$suffix" up
ip -n "$ns_edge" addr add 10.202.0.1/24 dev "f$suffix"; ip -n "$ns_edge" link set "f$suffix" up
ip -n "$ns_origin" addr add 10.202.0.2/24 dev "o$suffix"; ip -n "$ns_origin" link set "o$suffix" up
# The connector reaches identity (for its credential) on the edge's other address.
ip -n "$ns_origin" route add 10.201.0.0/24 via 10.202.0.1
# The laptop's names: `ip netns exec` shows this file as /etc/hosts inside the namespace.
mkdir -p "/etc/netns/$ns_client"
printf '10.201.0.1 %s %s edge.%s\n' "$hello" "$payroll" "$domain" > "/etc/netns/$ns_client/hosts"

edge_key=$("$bin/gatehouse-edge" genkey)
edge_pub=$(echo "$edge_key" | "$bin/gatehouse" pubkey)
identity_url=http://10.201.0.1:8080
state="$work/identity"; mkdir -m 700 "$state"
cat > "$state/identity.toml" <<TOML
listen = "10.201.0.1:8080"
database = "identity.db"
admin_token_file = "admin.token"
routes = ["100.64.0.1/32"]

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

cat > "$work/policy.toml" <<TOML
version = 1
[[applications]]
name = "hello"
destinations = [{ host = "$hello" }]
[[applications.policies]]
name = "staff"
action = "allow"
include = [{ email_domain = "example.com" }]

[[applications]]
name = "payroll"
destinations = [{ host = "$payroll" }]
[[applications.policies]]
name = "finance-only"
action = "allow"
include = [{ group = "finance" }]
TOML
echo "== policy: alice and bob (example.com) may open $hello; only group finance $payroll"
admin policy apply "$work/policy.toml" >/dev/null

echo "== pki: gatehouse-edge ca init (one certificate for the edge and *.$domain)"
"$bin/gatehouse-edge" ca init --dir "$work/pki" --name "edge.$domain" --name "*.$domain" \
    --ip 10.202.0.1 --ip 10.201.0.1 >/dev/null
cat > "$work/edge.toml" <<TOML
private_key = "$edge_key"
listen = "0.0.0.0:51820"
interface = "ghe-$suffix"
address = ["100.64.0.1/10"]

[identity]
url = "$identity_url"
token_file = "$state/edge.token"

[connectors]
listen = "10.202.0.1:7844"
cert_file = "$work/pki/edge.pem"
key_file = "$work/pki/edge.key"
issuer = "$identity_url"

[clientless]
listen = ["10.201.0.1:8443"]
[[clientless.certificates]]
cert_file = "$work/pki/edge.pem"
key_file = "$work/pki/edge.key"
TOML
echo "== edge: peers, policy and connector keys from identity's feed; HTTPS for browsers on 10.201.0.1:8443"
GATEHOUSE_LOG=info,gatehouse_edge=debug ip netns exec "$ns_edge" "$bin/gatehouse-edge" run \
    --config "$work/edge.toml" > "$work/edge.log" 2>&1 & pids+=($!)

echo "== connector: gatehouse-identity admin connectors create --name demo (its secret buys credentials)"
admin connectors create --name demo --route "$hello" --route "$payroll" > "$work/connector.json"
python3 - "$work/connector.json" "$identity_url" > "$work/credentials.json" <<'PY'
import json, sys
created = json.load(open(sys.argv[1]))
cid = created["connector"]["id"]
print(json.dumps({"TunnelID": cid, "ConnectorID": cid, "Secret": created["secret"], "Identity": sys.argv[2]}))
PY
chmod 600 "$work/connector.json" "$work/credentials.json"
cat > "$work/connector.yml" <<YAML
credentials-file: $work/credentials.json
edge-ca-file: $work/pki/ca.pem
edges: ["10.202.0.1:7844"]
ha-connections: 1
grace-period: 1s
ingress:
  - hostname: $hello
    service: http://127.0.0.1:8081
  - hostname: $payroll
    service: http://127.0.0.1:8082
  - service: http_status:404
YAML
ip netns exec "$ns_origin" python3 -u scripts/demo/origin.py hello 8081 > "$work/hello.log" 2>&1 & pids+=($!)
ip netns exec "$ns_origin" python3 -u scripts/demo/origin.py payroll 8082 > "$work/payroll.log" 2>&1 & pids+=($!)
echo "   origin apps on 127.0.0.1:8081 ($hello) and :8082 ($payroll), reachable only through the connector"
GATEHOUSE_LOG=info ip netns exec "$ns_origin" "$bin/gatehouse-connector" --config "$work/connector.yml" run \
    > "$work/connector.log" 2>&1 & pids+=($!)

echo "== laptop: gatehouse login --identity $identity_url (device code; alice signs in)"
password=$(sed -n 's/^alice@example.com //p' "$state/passwords.txt")
# The stand-in browser's own messages go to browser-login.log (login runs it with stderr closed).
if ! ip netns exec "$ns_client" env GATEHOUSE_LOGIN_OPEN="$PWD/scripts/demo/login-browser.sh" \
    DEMO_EMAIL=alice@example.com DEMO_PASSWORD="$password" DEMO_LOG="$work/browser-login.log" \
    timeout 60 "$bin/gatehouse" login --identity "$identity_url" --state-dir "$work/alice" 2>&1 \
    | grep --line-buffered -v -i "token" | sed 's/^/   /'; then
    sed 's/^/   /' "$work/browser-login.log" 2>/dev/null || true
    fail "gatehouse login did not finish within 60 s"
fi
echo "== laptop: gatehouse connect (the profile from identity: address, edge, routes)"
ip netns exec "$ns_client" "$bin/gatehouse" connect --state-dir "$work/alice" \
    --interface "ghc-$suffix" > "$work/client.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    grep -q "identity peers applied peers=1" "$work/edge.log" 2>/dev/null &&
    [ -S "/var/run/wireguard/ghc-$suffix.sock" ] &&
    ip netns exec "$ns_origin" curl -sf -m 1 http://127.0.0.1:2000/ready >/dev/null 2>&1 && break
    sleep 0.1
done

# Through the tunnel to the edge's application front (100.64.0.1:80), by Host, to the connector.
front() { ip netns exec "$ns_client" curl -sS -m 10 --resolve "$1:80:100.64.0.1" -o "$work/answer" -w '%{http_code}' "http://$1/"; }
echo "== allowed: GET http://$hello/ through the tunnel, the edge's front and the connector"
for _ in $(seq 50); do
    code=$(front "$hello" 2>/dev/null) || code=000
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] || fail "the allowed request got $code"
first=$(date +%s.%N)
echo "   200: $(cat "$work/answer")"
echo "== denied: GET http://$payroll/ (payroll is for group finance; alice is in engineering and admins)"
code=$(front "$payroll") || true
[ "$code" = 403 ] || fail "the denied request got ${code:-no answer}"
reference=$(sed -n 's/.*Reference: <code>\([0-9a-f]*\)<\/code>.*/\1/p' "$work/answer")
[ -n "$reference" ] || fail "the 403 page has no reference id"
echo "   403 from the edge, reference $reference"
echo "== why (gatehouse-identity admin decisions --reference $reference; admin policy explain)"
for _ in $(seq 30); do
    admin decisions --reference "$reference" 2>/dev/null | grep -q "$payroll" && break
    sleep 0.2
done
admin decisions --reference "$reference" | sed 's/^/   /'
admin policy explain --email alice@example.com --host "$payroll" \
    | python3 -c 'import json,sys; print("   " + json.load(sys.stdin).get("explanation", ""))' || true

echo "== browser, no Gatehouse client: https://$hello:8443/ from the laptop (not through the tunnel)"
if ! ip netns exec "$ns_client" env DEMO_EMAIL=alice@example.com DEMO_PASSWORD="$password" \
    python3 scripts/demo/browser.py --app "https://$hello:8443/" --ca "$work/pki/ca.pem" \
    > "$work/browser.out" 2>&1; then
    sed 's/^/   /' "$work/browser.out"; fail "the clientless sign-in did not reach the app"
fi
sed 's/^/   /' "$work/browser.out"

echo "== gatehouse status on the laptop"
ip netns exec "$ns_client" "$bin/gatehouse" status --state-dir "$work/alice" \
    --interface "ghc-$suffix" | sed -n '1,12p' | sed 's/^/   /'
echo "demo: first_allowed_request_s=$(python3 -c "print(round($first - $start, 2))")"
spki=$(openssl x509 -in "$work/pki/edge.pem" -pubkey -noout 2>/dev/null | openssl pkey -pubin -outform der 2>/dev/null \
    | openssl dgst -sha256 -binary 2>/dev/null | base64) || spki=""
[ -n "$spki" ] || spki="<the certificate's SPKI sha256, base64; openssl is missing>"
cat <<TEXT
demo: open the app in your own browser while the demo runs. The namespaces are not reachable
      from the host, so start a browser inside the laptop's namespace (its /etc/hosts maps
      $hello and $payroll to the edge) with a throwaway profile, e.g. from your desktop session:
        sudo ip netns exec $ns_client sudo -u "\$USER" env DISPLAY="\$DISPLAY" XAUTHORITY="\$XAUTHORITY" \\
            chromium --user-data-dir=\$(mktemp -d) --ignore-certificate-errors-spki-list=$spki \\
            https://$hello:8443/
      (the flag trusts only this demo's edge certificate; or import $work/pki/ca.pem
      as an authority). Sign in as alice@example.com, password $password;
      https://$payroll:8443/ shows the 403 page. Or, without a browser:
        sudo ip netns exec $ns_client curl --cacert $work/pki/ca.pem -i https://$hello:8443/
      (a 302 to identity's sign-in).
TEXT
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    echo "demo: running; press Ctrl-C to stop and clean up"
    # In the background so a signal to this shell alone (kill PID) runs the trap at once.
    sleep infinity & pids+=($!)
    wait "$!"
fi
echo "demo: stopping (no terminal or CI=true)"
