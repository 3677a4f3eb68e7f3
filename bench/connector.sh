#!/usr/bin/env bash
# Connector-path benchmark: an origin reached through Gatehouse's connector tunnel against the
# same origin reached by plain routing, measured in one run, interleaved.
#
#   client ns ──veth 10.201.0.0/24── edge ns ──veth 10.202.0.0/24── origin ns
#   10.201.0.2                       10.201.0.1 / 10.202.0.1         10.202.0.2
#   `gatehouse up` (ghc0)            gatehouse-edge run (ghe0,       gatehouse-connector run
#                                      QUIC :7844, TPROXY :7845)     10.99.0.5/24 on lo:
#                                    gatehouse-identity --embedded     nginx :8080, iperf3 :5201
#                                      (10.202.0.1:8080)
#
# (direct) the client reaches 10.99.0.5 by plain IP routing: /32 routes client → edge → origin
#          (the edge forwards), added only for this phase. Same namespaces, same veths, same
#          servers; the only difference from (tunnel) is the tunnel's own hops.
# (tunnel) client → WireGuard (`gatehouse up`, AllowedIPs 10.99.0.0/24) → edge (decrypt, TUN,
#          TPROXY into the edge's TCP stack) → QUIC stream → connector (private route
#          10.99.0.0/24, dials the origin over its lo) → origin.
# The whole stack stays up for the run; each phase only switches the client's route (checked
# with `ip route get` before every measurement). Repeats alternate the order (direct first on
# odd repeats, tunnel first on even ones). Per phase:
#   HTTP: wrk -t THREADS -c CONNECTIONS -d SECONDS --latency against nginx serving a static file
#         of BODY_BYTES (keep-alive: wrk reuses its connections, so this is per-request cost,
#         not connection setup); requests/s, p50, p99.
#   TCP:  iperf3 -C cubic, 1 stream, -t SECONDS, client → origin; Gbit/s and retransmits.
# Tunnel phases also record the CPU time of the client, edge and connector processes
# (utime+stime from /proc/<pid>/stat): µs per HTTP request and s per GB of iperf3 data.
# Prints per-repeat figures, medians with min–max, and as the last line
#   connector: rps_ratio=<x> p99_overhead_ms=<y> throughput_ratio=<z>
# (medians; rps_ratio = tunnel/direct requests/s, p99_overhead_ms = tunnel p99 − direct p99,
# throughput_ratio = tunnel/direct iperf3 Gbit/s).
#
# Credential: identity runs embedded (`serve --embedded`) in the edge namespace; the edge follows
# its feed (`[identity]`) for the signing keys; the admin API creates the connector (route
# 10.99.0.0/24) and its secret; the bench exchanges that secret at
# POST /v1/connector-credential and gives the connector the issued JWT ("Credential" mode,
# TunnelID taken from the JWT's tunnel_id claim). Why not "Secret" mode: identity issues a
# random tunnel_id per credential and the edge rejects a Register whose TunnelID differs, so a
# connector with a fixed TunnelID and a Secret never registers (see the report for this bench).
#
# Usage (root): bench/connector.sh [--repeats N] [--seconds S] [--edge-threads N]
#   --edge-threads: the edge's `[connectors] threads` (default: unset, one per core; 0 runs
#   connector traffic on the WireGuard thread, as before the edge had a runtime for it).
#   GATEHOUSE_BIN_DIR  gatehouse, gatehouse-edge, gatehouse-connector, gatehouse-identity
#                      (default: target/release; build with
#                       cargo build --release -p client -p edge-gateway -p connector -p identity)
#   WRK_THREADS (2), WRK_CONNECTIONS (16), BODY_BYTES (1024), HA_CONNECTIONS (connector's
#   ha-connections, default 4 = the connector's own default)
# Needs: iproute2, nftables (the edge's TPROXY rules), iperf3, wrk, nginx-light (or nginx),
#   curl, python3, iputils-ping.
# Bounded in time: every step has a timeout. Up to 60 s waiting for an idle machine, ~5 s of
# setup, then per repeat 4 × S + ~3 s: with the defaults (3 repeats, 10 s) about 2.2 minutes,
# 3.2 at most when the machine never gets idle (measured: 3 min 11 s on a busy machine).
set -euo pipefail

REPEATS=3
SECONDS_PER_RUN=10
EDGE_THREADS=
while [ $# -gt 0 ]; do
    case "$1" in
        --repeats) REPEATS=$2; shift ;;
        --seconds) SECONDS_PER_RUN=$2; shift ;;
        --edge-threads) EDGE_THREADS=$2; shift ;;
        -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || { echo "connector.sh: needs root (network namespaces)" >&2; exit 1; }
[ "$REPEATS" -ge 1 ] && [ "$SECONDS_PER_RUN" -ge 1 ] || { echo "bad --repeats/--seconds" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${GATEHOUSE_BIN_DIR:-$ROOT/target/release}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-16}
BODY_BYTES=${BODY_BYTES:-1024}
HA_CONNECTIONS=${HA_CONNECTIONS:-4}
MTU=1420
ORIGIN=10.99.0.5
PRIVATE_ROUTE=10.99.0.0/24
HTTP_PORT=8080
IDENTITY=http://10.202.0.1:8080
SUFFIX=$(printf '%04x%04x' "$RANDOM" "$RANDOM" | cut -c1-6)
NS_C=ghcb-c-$SUFFIX
NS_E=ghcb-e-$SUFFIX
NS_O=ghcb-o-$SUFFIX
WORK=$(mktemp -d /tmp/gatehouse-connector-bench.XXXXXX)
RESULTS=$WORK/results.tsv
HZ=$(getconf CLK_TCK)
PIDS=()        # every background process this script started
CLIENT_PID=
EDGE_PID=
CONNECTOR_PID=
OK=0

log() { printf '%s\n' "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "$NS_C" "$NS_E" "$NS_O"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ "$OK" -eq 1 ]; then rm -rf "$WORK"; else log "connector.sh: failed; logs kept in $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { log "connector.sh: $*"; tail -n 30 "$WORK"/*.log >&2 2>/dev/null || true; exit 1; }

# spawn NS LOG CMD...: starts CMD in namespace NS, output to LOG; sets SPAWNED to its pid.
spawn() {
    local ns=$1 logfile=$2; shift 2
    ip netns exec "$ns" "$@" >"$logfile" 2>&1 </dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# spawn_isolated NS LOG UAPI_DIR CMD...: like spawn, with UAPI_DIR bind-mounted over
# /var/run/wireguard in the process's own mount namespace (as in dataplane.sh: the interface
# names ghc0/ghe0 are fixed, UAPI sockets are otherwise host-wide).
spawn_isolated() {
    local ns=$1 logfile=$2 dir=$3; shift 3
    mkdir -p "$dir" /var/run/wireguard
    # shellcheck disable=SC2016 # expanded by the inner shell
    spawn "$ns" "$logfile" sh -c 'mount --bind "$0" /var/run/wireguard && exec "$@"' "$dir" "$@"
}

# wait_for TRIES DESCRIPTION CMD...: runs CMD every 0.2 s until it succeeds, at most TRIES times.
wait_for() {
    local tries=$1 what=$2; shift 2
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what"
}

# cpu_ticks PID: utime + stime (fields 14 and 15 of /proc/PID/stat, all threads), in ticks.
cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) }
    # shellcheck disable=SC2086 # word splitting wanted: the fields after the command name
    set -- $rest
    echo $(( ${12} + ${13} ))
}

wait_idle() {
    local load
    for _ in $(seq 30); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        python3 -c "import sys; sys.exit(0 if float('$load') < 0.5 else 1)" && return 0
        sleep 2
    done
    log "warning: machine not idle (load $(cut -d' ' -f1-3 /proc/loadavg)); figures will be noisy"
}

check_tools() {
    local missing=() t
    for t in ip nft iperf3 wrk nginx curl python3 ping; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ "${#missing[@]}" -eq 0 ] || {
        log "connector.sh: missing tools: ${missing[*]}"
        log "  Debian: apt-get install iproute2 nftables iperf3 wrk nginx-light curl python3 iputils-ping"
        exit 1; }
    for b in gatehouse gatehouse-edge gatehouse-connector gatehouse-identity; do
        [ -x "$BIN_DIR/$b" ] || {
            log "$BIN_DIR/$b missing: run cargo build --release -p client -p edge-gateway -p connector -p identity"
            exit 1; }
    done
}

setup_topology() {
    ip netns add "$NS_C"; ip netns add "$NS_E"; ip netns add "$NS_O"
    for ns in "$NS_C" "$NS_E" "$NS_O"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_C" link add vc type veth peer name vec netns "$NS_E"
    ip -n "$NS_E" link add veo type veth peer name vo netns "$NS_O"
    ip -n "$NS_C" addr add 10.201.0.2/24 dev vc
    ip -n "$NS_E" addr add 10.201.0.1/24 dev vec
    ip -n "$NS_E" addr add 10.202.0.1/24 dev veo
    ip -n "$NS_O" addr add 10.202.0.2/24 dev vo
    ip -n "$NS_C" link set vc up; ip -n "$NS_E" link set vec up
    ip -n "$NS_E" link set veo up; ip -n "$NS_O" link set vo up
    ip netns exec "$NS_E" sysctl -q -w net.ipv4.ip_forward=1
    # The origin's private address, on lo as in tests/e2e/tests/connector_path.rs.
    ip -n "$NS_O" addr add "$ORIGIN/24" dev lo
}

start_origin_servers() {
    local www=$WORK/www
    mkdir -p "$www" "$WORK/nginx-tmp"
    chmod 0711 "$WORK"; chmod 0755 "$www"
    python3 -c "import sys; sys.stdout.write('x' * (int(sys.argv[1]) - 1) + '\n')" "$BODY_BYTES" \
        >"$www/index.html"
    chmod 0644 "$www/index.html"
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    types { text/html html; }
    server {
        listen $ORIGIN:$HTTP_PORT;
        root $www;
    }
}
EOF
    spawn "$NS_O" "$WORK/nginx.log" nginx -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" -g 'daemon off;'
    spawn "$NS_O" "$WORK/iperf3-server.log" iperf3 -s -B "$ORIGIN"
    wait_for 50 "nginx did not start" \
        ip netns exec "$NS_O" curl -fsS -m 1 -o /dev/null "http://$ORIGIN:$HTTP_PORT/index.html"
    wait_for 50 "iperf3 server did not start" \
        sh -c "ip netns exec '$NS_O' ss -ltn | grep -q '$ORIGIN:5201'"
}

# Identity (embedded) in the edge namespace; creates the connector and writes its credentials.
start_identity() {
    spawn "$NS_E" "$WORK/identity.log" "$BIN_DIR/gatehouse-identity" serve \
        --embedded "$WORK/identity" --listen 10.202.0.1:8080
    wait_for 100 "identity did not become healthy" \
        ip netns exec "$NS_E" curl -fsS -m 1 -o /dev/null "$IDENTITY/healthz"
    local created jwt
    created=$(ip netns exec "$NS_E" curl -fsS -m 10 -X POST \
        -H "Authorization: Bearer $(cat "$WORK/identity/admin.token")" \
        -H 'Content-Type: application/json' \
        -d "{\"name\":\"bench-connector\",\"routes\":[\"$PRIVATE_ROUTE\"]}" \
        "$IDENTITY/admin/v1/connectors") || die "POST /admin/v1/connectors failed"
    # The exchange the connector's "Secret" mode does, done once here (see the header).
    jwt=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["secret"])' "$created" |
        { read -r secret; ip netns exec "$NS_O" curl -fsS -m 10 -X POST \
            -H "Authorization: Bearer $secret" "$IDENTITY/v1/connector-credential"; }) ||
        die "POST /v1/connector-credential failed"
    (umask 077; python3 - "$created" "$jwt" >"$WORK/credentials.json" <<'EOF'
import base64, json, sys
created, issued = json.loads(sys.argv[1]), json.loads(sys.argv[2])
token = issued["token"]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
connector = created["connector"]
assert claims["connector_id"] == connector.get("connector_id", connector.get("id")), (claims, connector)
print(json.dumps({"TunnelID": claims["tunnel_id"], "ConnectorID": claims["connector_id"],
                  "Credential": token}))
EOF
    ) || die "could not build the credentials file"
}

start_edge_and_client() {
    local ck ek cpub epub
    ck=$("$BIN_DIR/gatehouse" genkey); ek=$("$BIN_DIR/gatehouse" genkey)
    cpub=$("$BIN_DIR/gatehouse" pubkey <<<"$ck"); epub=$("$BIN_DIR/gatehouse" pubkey <<<"$ek")
    timeout 20 "$BIN_DIR/gatehouse-edge" ca init --dir "$WORK/pki" --name edge.bench \
        --ip 10.202.0.1 >"$WORK/ca-init.log" 2>&1 || die "gatehouse-edge ca init failed"
    (umask 077
    cat >"$WORK/edge.toml" <<EOF
private_key = "$ek"
listen = "0.0.0.0:51820"
interface = "ghe0"
address = ["100.64.0.1/10"]
mtu = $MTU
[[peers]]
name = "bench-client"
public_key = "$cpub"
addresses = ["100.64.0.2/32"]
[[policy]]
action = "allow"
[identity]
url = "$IDENTITY"
token_file = "$WORK/identity/edge.token"
cache = "$WORK/edge-feed-cache.json"
[connectors]
listen = "0.0.0.0:7844"
cert_file = "$WORK/pki/edge.pem"
key_file = "$WORK/pki/edge.key"
issuer = "$IDENTITY"
name = "bench-edge"
${EDGE_THREADS:+threads = $EDGE_THREADS}
EOF
    cat >"$WORK/client.conf" <<EOF
[Interface]
PrivateKey = $ck
Address = 100.64.0.2/32
MTU = $MTU

[Peer]
PublicKey = $epub
Endpoint = 10.201.0.1:51820
AllowedIPs = $PRIVATE_ROUTE
PersistentKeepalive = 25
EOF
    )
    spawn_isolated "$NS_E" "$WORK/gatehouse-edge.log" "$WORK/uapi-edge" \
        "$BIN_DIR/gatehouse-edge" run --config "$WORK/edge.toml"
    EDGE_PID=$SPAWNED
    wait_for 100 "the edge's connector listener did not come up" \
        grep -q 'connector listener up' "$WORK/gatehouse-edge.log"
    spawn_isolated "$NS_C" "$WORK/gatehouse.log" "$WORK/uapi-client" \
        "$BIN_DIR/gatehouse" up --config "$WORK/client.conf" --interface ghc0
    CLIENT_PID=$SPAWNED
    wait_for 75 "gatehouse did not route $PRIVATE_ROUTE via ghc0" \
        sh -c "ip -n '$NS_C' route get $ORIGIN | grep -q 'dev ghc0'"
}

start_connector() {
    cat >"$WORK/config.yml" <<EOF
credentials-file: $WORK/credentials.json
edge-ca-file: $WORK/pki/ca.pem
edges: ["10.202.0.1:7844"]
ha-connections: $HA_CONNECTIONS
private-routes: [$PRIVATE_ROUTE]
grace-period: 1s
ingress:
  - service: http_status:404
EOF
    spawn "$NS_O" "$WORK/connector.log" "$BIN_DIR/gatehouse-connector" --config "$WORK/config.yml" run
    CONNECTOR_PID=$SPAWNED
    # Registration may be refused until the edge has identity's signing keys from the feed;
    # the connector re-dials with backoff.
    wait_for 150 "the connector did not register (see connector.log and gatehouse-edge.log)" \
        ip netns exec "$NS_O" curl -fsS -m 1 -o /dev/null http://127.0.0.1:2000/ready
    wait_for 50 "the edge did not install the connector's routes" \
        grep -q 'connector routes installed' "$WORK/gatehouse-edge.log"
    wait_for 50 "no HTTP answer from the origin through the tunnel" \
        ip netns exec "$NS_C" curl -fsS -m 3 -o /dev/null "http://$ORIGIN:$HTTP_PORT/index.html"
}

# use_path direct|tunnel: points the client at the origin by plain routing or through ghc0.
use_path() {
    if [ "$1" = direct ]; then
        ip -n "$NS_C" route replace "$ORIGIN/32" via 10.201.0.1 dev vc
        ip -n "$NS_E" route replace "$ORIGIN/32" via 10.202.0.2 dev veo
        ip -n "$NS_O" route replace 10.201.0.0/24 via 10.202.0.1 dev vo
        ip -n "$NS_C" route get "$ORIGIN" | grep -q 'dev vc' || die "direct route not in effect"
    else
        ip -n "$NS_C" route del "$ORIGIN/32" 2>/dev/null || true
        ip -n "$NS_E" route del "$ORIGIN/32" 2>/dev/null || true
        ip -n "$NS_O" route del 10.201.0.0/24 2>/dev/null || true
        ip -n "$NS_C" route get "$ORIGIN" | grep -q 'dev ghc0' || die "tunnel route not in effect"
    fi
    ip netns exec "$NS_C" curl -fsS -m 3 -o /dev/null "http://$ORIGIN:$HTTP_PORT/index.html" ||
        die "$1: no HTTP answer from the origin"
}

# ticks_tunnel: "client edge connector" CPU ticks now.
ticks_tunnel() {
    echo "$(cpu_ticks "$CLIENT_PID") $(cpu_ticks "$EDGE_PID") $(cpu_ticks "$CONNECTOR_PID")"
}

http_run() {
    local path=$1 out=$WORK/wrk-$1-$REP.txt t0 t1
    t0=$(ticks_tunnel)
    timeout $((SECONDS_PER_RUN + 30)) ip netns exec "$NS_C" wrk -t "$WRK_THREADS" \
        -c "$WRK_CONNECTIONS" -d "${SECONDS_PER_RUN}s" --latency \
        "http://$ORIGIN:$HTTP_PORT/index.html" >"$out" 2>&1 || {
        cat "$out" >&2; die "$path: wrk failed"; }
    t1=$(ticks_tunnel)
    python3 - "$out" "$path" "$t0" "$t1" "$HZ" >>"$RESULTS" <<'EOF'
import re, sys
path, name, t0, t1, hz = sys.argv[1:]
text = open(path).read()
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
def lat(p):
    m = re.search(rf"^\s+{p}%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    if not m:
        sys.exit(f"{name}: no {p}% latency in wrk output:\n{text}")
    return float(m.group(1)) * unit[m.group(2)]
m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
if not m:
    sys.exit(f"{name}: no Requests/sec in wrk output:\n{text}")
rps = float(m.group(1))
total = int(re.search(r"^\s+(\d+) requests in", text, re.M).group(1))
errors = 0
for pat in (r"Non-2xx or 3xx responses:\s+(\d+)",
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
    m = re.search(pat, text)
    if m:
        errors += sum(int(g) for g in m.groups())
print(f"{name}\trps\t{rps:.1f}")
print(f"{name}\tp50_ms\t{lat(50):.3f}")
print(f"{name}\tp99_ms\t{lat(99):.3f}")
print(f"{name}\thttp_errors\t{errors}")
if name == "tunnel" and total:
    for proc, a, b in zip(("client", "edge", "connector"), t0.split(), t1.split()):
        print(f"{name}\tcpu_{proc}_us_per_req\t{(int(b) - int(a)) / int(hz) / total * 1e6:.1f}")
EOF
    log "  $path http: $(grep -P "^$path\t(rps|p50_ms|p99_ms|http_errors)\t" "$RESULTS" | tail -n 4 | cut -f3 | paste -sd' ') (req/s, p50 ms, p99 ms, errors)"
}

iperf_run() {
    local path=$1 json=$WORK/iperf-$1-$REP.json t0 t1
    t0=$(ticks_tunnel)
    timeout $((SECONDS_PER_RUN + 30)) ip netns exec "$NS_C" iperf3 -c "$ORIGIN" -C cubic \
        -P 1 -t "$SECONDS_PER_RUN" --connect-timeout 5000 -J >"$json" || {
        cat "$json" >&2; die "$path: iperf3 failed"; }
    t1=$(ticks_tunnel)
    python3 - "$json" "$path" "$t0" "$t1" "$HZ" >>"$RESULTS" <<'EOF'
import json, sys
path, name, t0, t1, hz = sys.argv[1:]
end = json.load(open(path))["end"]
received = end["sum_received"]
print(f"{name}\tgbit_s\t{received['bits_per_second'] / 1e9:.3f}")
print(f"{name}\tretransmits\t{end['sum_sent'].get('retransmits', 0)}")
if name == "tunnel":
    gb = received["bytes"] / 1e9
    for proc, a, b in zip(("client", "edge", "connector"), t0.split(), t1.split()):
        print(f"{name}\tcpu_{proc}_s_per_gb\t{(int(b) - int(a)) / int(hz) / gb:.3f}")
EOF
    log "  $path tcp: $(grep -P "^$path\t(gbit_s|retransmits)\t" "$RESULTS" | tail -n 2 | cut -f3 | paste -sd' ') (Gbit/s, retransmits)"
}

measure() {
    use_path "$1"
    http_run "$1"
    iperf_run "$1"
}

summarize() {
    python3 - "$RESULTS" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, metric, value = line.rstrip("\n").split("\t")
    rows[(name, metric)].append(float(value))
def med(name, metric):
    values = rows.get((name, metric))
    return statistics.median(values) if values else None
def fmt(name, metric, digits):
    v = rows.get((name, metric))
    if not v:
        return "n/a"
    return (f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f}, "
            f"n={len(v)})")
metrics = [("rps", "req/s", 0), ("p50_ms", "ms", 3), ("p99_ms", "ms", 3),
           ("http_errors", "", 0), ("gbit_s", "Gbit/s", 3), ("retransmits", "", 0)]
cpu = [("cpu_client_us_per_req", "CPU µs/request", 1), ("cpu_edge_us_per_req", "CPU µs/request", 1),
       ("cpu_connector_us_per_req", "CPU µs/request", 1),
       ("cpu_client_s_per_gb", "CPU s/GB", 3), ("cpu_edge_s_per_gb", "CPU s/GB", 3),
       ("cpu_connector_s_per_gb", "CPU s/GB", 3)]
print("median (min–max, n) per metric")
for name in ("direct", "tunnel"):
    for metric, unit, digits in metrics + (cpu if name == "tunnel" else []):
        print(f"  {name:<7} {metric:<25} {fmt(name, metric, digits)} {unit}".rstrip())
def ratio(metric):
    d, t = med("direct", metric), med("tunnel", metric)
    return f"{t / d:.3f}" if d and t is not None else "n/a"
d, t = med("direct", "p99_ms"), med("tunnel", "p99_ms")
p99 = f"{t - d:.3f}" if d is not None and t is not None else "n/a"
print(f"connector: rps_ratio={ratio('rps')} p99_overhead_ms={p99} throughput_ratio={ratio('gbit_s')}")
EOF
}

main() {
    check_tools
    log "connector: $(nproc) cores, kernel $(uname -r), $(wrk -v 2>&1 | sed -n 1p | cut -d' ' -f1-2), $(nginx -v 2>&1), ${SECONDS_PER_RUN}s per run, $REPEATS repeats, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS, body $BODY_BYTES B, ha-connections $HA_CONNECTIONS, MTU $MTU"
    wait_idle
    setup_topology
    start_origin_servers
    start_identity
    start_edge_and_client
    start_connector
    log "connector: tunnel up (connector registered, routes installed)"
    : >"$RESULTS"
    for REP in $(seq "$REPEATS"); do
        log "repeat $REP/$REPEATS (load $(cut -d' ' -f1 /proc/loadavg))"
        if [ $((REP % 2)) -eq 1 ]; then measure direct; measure tunnel
        else measure tunnel; measure direct; fi
    done
    summarize
    OK=1
}

main
