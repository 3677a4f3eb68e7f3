#!/usr/bin/env bash
# Data-plane benchmark: Gatehouse against stock wireguard-go, measured in one run, interleaved.
#
#   client ns ──veth 10.201.0.0/24── edge ns ──veth 10.202.0.0/24── dest ns (iperf3 server)
#
# (A) wireguard-go on client and edge (tunnel 100.70.0.0/24, edge forwards to dest);
# (B) Gatehouse: `gatehouse up` on the client, `gatehouse-edge run` on the edge (tunnel
#     100.64.0.0/10); see start_gatehouse below for the CLI contract.
# For each repeat: direct ping (no tunnel), then A, then B, each freshly started. Per tunnel:
# iperf3 TCP with 1 and 4 streams (cubic, -t SECONDS), CPU seconds per GB of the client and edge
# tunnel processes (utime+stime from /proc/<pid>/stat), ping RTT (-c 20 -i 0.05).
# Prints medians with min–max; the last line is
#   dataplane: gatehouse=<Gbit/s> wireguard-go=<Gbit/s> ratio=<x>
# (1-stream TCP medians; ratio = gatehouse / wireguard-go).
#
# Usage (root): bench/dataplane.sh [--only-wireguard-go] [--repeats N] [--seconds S]
#   GATEHOUSE_BIN_DIR   where gatehouse and gatehouse-edge are (default: target/release)
#   WIREGUARD_GO        the wireguard-go binary to compare with (default: on PATH)
#   ONLY_WIREGUARD_GO=1 same as --only-wireguard-go
# Needs: iproute2, wireguard-go, wireguard-tools, iperf3, iputils-ping, python3.
# Bounded in time: every step has a timeout; about (2 × (2 × S + 5) + 3) × N seconds in all.
set -euo pipefail

REPEATS=3
SECONDS_PER_RUN=10
ONLY_WG=${ONLY_WIREGUARD_GO:-0}
while [ $# -gt 0 ]; do
    case "$1" in
        --only-wireguard-go) ONLY_WG=1 ;;
        --repeats) REPEATS=$2; shift ;;
        --seconds) SECONDS_PER_RUN=$2; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || { echo "dataplane.sh: needs root (network namespaces)" >&2; exit 1; }
[ "$REPEATS" -ge 1 ] && [ "$SECONDS_PER_RUN" -ge 1 ] || { echo "bad --repeats/--seconds" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${GATEHOUSE_BIN_DIR:-$ROOT/target/release}
WG_GO=${WIREGUARD_GO:-wireguard-go}
MTU=1420
SUFFIX=$(printf '%04x%04x' "$RANDOM" "$RANDOM" | cut -c1-6)
NS_C=ghdp-c-$SUFFIX
NS_E=ghdp-e-$SUFFIX
NS_D=ghdp-d-$SUFFIX
WG_C=wgc$SUFFIX # wireguard-go interface names: unique, since UAPI sockets are host-wide
WG_E=wge$SUFFIX
WORK=$(mktemp -d /tmp/gatehouse-dataplane.XXXXXX)
RESULTS=$WORK/results.tsv
HZ=$(getconf CLK_TCK)
PIDS=()      # every background process this script started
TUNNEL_PIDS=() # the running tunnel's (client, edge) processes
OK=0

log() { printf '%s\n' "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 20); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "$NS_C" "$NS_E" "$NS_D"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f "/var/run/wireguard/$WG_C.sock" "/var/run/wireguard/$WG_E.sock"
    if [ "$OK" -eq 1 ]; then rm -rf "$WORK"; else log "dataplane.sh: failed; logs kept in $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn NS LOG CMD...: starts CMD in namespace NS, output to LOG; sets SPAWNED to its pid.
spawn() {
    local ns=$1 logfile=$2; shift 2
    ip netns exec "$ns" "$@" >"$logfile" 2>&1 </dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# spawn_isolated NS LOG UAPI_DIR CMD...: like spawn, with UAPI_DIR bind-mounted over
# /var/run/wireguard in the process's own mount namespace (`ip netns exec` gives it one). UAPI
# sockets are otherwise host-wide, and the contract's interface names (ghc0, ghe0) are fixed, so
# this keeps the benchmark clear of any other ghc0/ghe0 on the host.
spawn_isolated() {
    local ns=$1 logfile=$2 dir=$3; shift 3
    mkdir -p "$dir" /var/run/wireguard
    # shellcheck disable=SC2016 # expanded by the inner shell
    spawn "$ns" "$logfile" sh -c 'mount --bind "$0" /var/run/wireguard && exec "$@"' "$dir" "$@"
}

# stop_pid PID: SIGTERM, SIGKILL after 3 s, reap.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
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

setup_topology() {
    ip netns add "$NS_C"; ip netns add "$NS_E"; ip netns add "$NS_D"
    for ns in "$NS_C" "$NS_E" "$NS_D"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_C" link add vc type veth peer name vec netns "$NS_E"
    ip -n "$NS_E" link add ved type veth peer name vd netns "$NS_D"
    ip -n "$NS_C" addr add 10.201.0.2/24 dev vc
    ip -n "$NS_E" addr add 10.201.0.1/24 dev vec
    ip -n "$NS_E" addr add 10.202.0.1/24 dev ved
    ip -n "$NS_D" addr add 10.202.0.2/24 dev vd
    ip -n "$NS_C" link set vc up; ip -n "$NS_E" link set vec up
    ip -n "$NS_E" link set ved up; ip -n "$NS_D" link set vd up
    ip netns exec "$NS_E" sysctl -q -w net.ipv4.ip_forward=1
    # Replies to tunnel addresses (100.64.0.0/10, 100.70.0.0/24) go back through the edge.
    ip -n "$NS_D" route add default via 10.202.0.1
    spawn "$NS_D" "$WORK/iperf3-server.log" iperf3 -s -B 10.202.0.2
    for _ in $(seq 50); do
        ip netns exec "$NS_D" ss -ltn | grep -q '10.202.0.2:5201' && return 0
        sleep 0.1
    done
    log "iperf3 server did not start"; cat "$WORK/iperf3-server.log" >&2; exit 1
}

# wait_tunnel NAME: waits until dest answers pings from the client (at most ~15 s).
wait_tunnel() {
    for _ in $(seq 15); do
        ip netns exec "$NS_C" ping -c 1 -W 1 -q 10.202.0.2 >/dev/null 2>&1 && return 0
    done
    log "$1: no ping to 10.202.0.2 through the tunnel; logs:"
    tail -n 40 "$WORK"/*.log >&2 || true
    exit 1
}

# wggo_start NS IFNAME KEYFILE PORT ADDR: a wireguard-go daemon, configured; sets SPAWNED.
wggo_start() {
    local ns=$1 ifname=$2 key=$3 port=$4 addr=$5
    spawn "$ns" "$WORK/wireguard-go-$ifname.log" \
        env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error "$WG_GO" -f "$ifname"
    local pid=$SPAWNED
    for _ in $(seq 100); do [ -S "/var/run/wireguard/$ifname.sock" ] && break; sleep 0.1; done
    [ -S "/var/run/wireguard/$ifname.sock" ] || { log "wireguard-go $ifname did not start"; exit 1; }
    ip netns exec "$ns" wg set "$ifname" private-key "$key" listen-port "$port"
    ip -n "$ns" addr add "$addr" dev "$ifname"
    ip -n "$ns" link set "$ifname" mtu "$MTU" up
    SPAWNED=$pid
}

# (A) Stock wireguard-go on client and edge; sets TUNNEL_PIDS=(client edge).
start_wireguard_go() {
    local ck ek cpub epub
    ck=$WORK/wg-client.key; ek=$WORK/wg-edge.key
    (umask 077; wg genkey >"$ck"; wg genkey >"$ek")
    cpub=$(wg pubkey <"$ck"); epub=$(wg pubkey <"$ek")
    wggo_start "$NS_E" "$WG_E" "$ek" 51821 100.70.0.1/24; local epid=$SPAWNED
    wggo_start "$NS_C" "$WG_C" "$ck" 51821 100.70.0.2/24; local cpid=$SPAWNED
    ip netns exec "$NS_E" wg set "$WG_E" peer "$cpub" allowed-ips 100.70.0.2/32
    ip netns exec "$NS_C" wg set "$WG_C" peer "$epub" endpoint 10.201.0.1:51821 \
        allowed-ips 10.202.0.0/24,100.70.0.0/24 persistent-keepalive 25
    ip -n "$NS_C" route replace 10.202.0.0/24 dev "$WG_C"
    TUNNEL_PIDS=("$cpid" "$epid")
    wait_tunnel wireguard-go
}

# ---------------------------------------------------------------------------------------------
# (B) Gatehouse. The CLI contract of the two binaries:
#   edge:   gatehouse-edge run --config <edge.toml>                (edge namespace, foreground)
#   client: gatehouse up --config <client.conf> --interface ghc0   (client namespace, foreground)
# client.conf is a wg-quick file; `gatehouse up` adds the AllowedIPs routes itself. Each runs with
# a private /var/run/wireguard (see spawn_isolated), so `wg show ghc0` works only inside it.
# Sets TUNNEL_PIDS=(client edge).
# ---------------------------------------------------------------------------------------------
start_gatehouse() {
    local edge_bin=$BIN_DIR/gatehouse-edge client_bin=$BIN_DIR/gatehouse
    local ck ek cpub epub
    ck=$(wg genkey); ek=$(wg genkey)
    cpub=$(wg pubkey <<<"$ck"); epub=$(wg pubkey <<<"$ek")
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
EOF
    cat >"$WORK/client.conf" <<EOF
[Interface]
PrivateKey = $ck
Address = 100.64.0.2/32
MTU = $MTU

[Peer]
PublicKey = $epub
Endpoint = 10.201.0.1:51820
AllowedIPs = 10.202.0.0/24
PersistentKeepalive = 25
EOF
    )
    spawn_isolated "$NS_E" "$WORK/gatehouse-edge.log" "$WORK/uapi-edge" \
        "$edge_bin" run --config "$WORK/edge.toml"
    local epid=$SPAWNED
    spawn_isolated "$NS_C" "$WORK/gatehouse.log" "$WORK/uapi-client" \
        "$client_bin" up --config "$WORK/client.conf" --interface ghc0
    local cpid=$SPAWNED
    local routed=0
    for _ in $(seq 150); do
        if ip -n "$NS_C" route get 10.202.0.2 2>/dev/null | grep -q 'dev ghc0'; then routed=1; break; fi
        sleep 0.1
    done
    if [ "$routed" -eq 0 ]; then
        ip -n "$NS_C" link show ghc0 up 2>/dev/null | grep -q ghc0 || {
            log "gatehouse: no interface ghc0 up in the client namespace within 15 s; logs:"
            tail -n 40 "$WORK"/gatehouse*.log >&2; exit 1; }
        log "warning: gatehouse did not route 10.202.0.0/24 via ghc0; adding the route"
        ip -n "$NS_C" route replace 10.202.0.0/24 dev ghc0
    fi
    TUNNEL_PIDS=("$cpid" "$epid")
    wait_tunnel gatehouse
}

stop_tunnel() {
    local pid
    for pid in "${TUNNEL_PIDS[@]}"; do stop_pid "$pid"; done
    TUNNEL_PIDS=()
    ip -n "$NS_C" route del 10.202.0.0/24 2>/dev/null || true
}

# iperf_run NAME STREAMS: one iperf3 run; records Gbit/s and CPU s/GB of the tunnel processes.
iperf_run() {
    local name=$1 streams=$2 json=$WORK/iperf-$1-$2-$REP.json
    local c0 e0 c1 e1
    c0=$(cpu_ticks "${TUNNEL_PIDS[0]}"); e0=$(cpu_ticks "${TUNNEL_PIDS[1]}")
    timeout $((SECONDS_PER_RUN + 30)) ip netns exec "$NS_C" iperf3 -c 10.202.0.2 -C cubic \
        -P "$streams" -t "$SECONDS_PER_RUN" --connect-timeout 5000 -J >"$json" || {
        log "$name: iperf3 -P $streams failed"; cat "$json" >&2; exit 1; }
    c1=$(cpu_ticks "${TUNNEL_PIDS[0]}"); e1=$(cpu_ticks "${TUNNEL_PIDS[1]}")
    python3 - "$json" "$name" "$streams" $((c1 - c0)) $((e1 - e0)) "$HZ" >>"$RESULTS" <<'EOF'
import json, sys
path, name, streams, cticks, eticks, hz = sys.argv[1:]
end = json.load(open(path))["end"]["sum_received"]
gb = end["bytes"] / 1e9
print(f"{name}\ttcp{streams}\t{end['bits_per_second'] / 1e9:.3f}")
print(f"{name}\tcpu_client_s_per_gb_tcp{streams}\t{int(cticks) / int(hz) / gb:.3f}")
print(f"{name}\tcpu_edge_s_per_gb_tcp{streams}\t{int(eticks) / int(hz) / gb:.3f}")
EOF
    log "  $name tcp -P $streams: $(tail -n 3 "$RESULTS" | cut -f3 | paste -sd' ') (Gbit/s, client s/GB, edge s/GB)"
}

# ping_run NAME: 20 pings to dest at 50 ms; records the average RTT in ms.
ping_run() {
    local name=$1 out avg
    out=$(ip netns exec "$NS_C" ping -c 20 -i 0.05 -w 10 -q 10.202.0.2 2>&1) || true
    avg=$(sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$out")
    [ -n "$avg" ] || { log "$name: ping failed: $out"; exit 1; }
    printf '%s\trtt_ms\t%s\n' "$name" "$avg" >>"$RESULTS"
    log "  $name ping avg ${avg} ms"
}

measure_tunnel() {
    local name=$1
    "start_${name//-/_}"
    iperf_run "$name" 1
    iperf_run "$name" 4
    ping_run "$name"
    stop_tunnel
}

measure_direct() {
    ip -n "$NS_C" route replace 10.202.0.0/24 via 10.201.0.1
    ping_run direct
    ip -n "$NS_C" route del 10.202.0.0/24
}

summarize() {
    python3 - "$RESULTS" "$ONLY_WG" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, metric, value = line.rstrip("\n").split("\t")
    rows[(name, metric)].append(float(value))
def med(name, metric):
    values = rows.get((name, metric))
    return statistics.median(values) if values else None
def fmt(name, metric):
    v = rows.get((name, metric))
    if not v:
        return "n/a"
    return f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f}, n={len(v)})"
names = ["wireguard-go"] + ([] if sys.argv[2] == "1" else ["gatehouse"])
units = {"tcp1": "Gbit/s", "tcp4": "Gbit/s", "rtt_ms": "ms"}
metrics = ["tcp1", "tcp4", "cpu_client_s_per_gb_tcp1", "cpu_edge_s_per_gb_tcp1",
           "cpu_client_s_per_gb_tcp4", "cpu_edge_s_per_gb_tcp4", "rtt_ms"]
print("median (min–max, n) per metric")
print(f"  {'direct':<13} {'rtt_ms':<26} {fmt('direct', 'rtt_ms')}")
for name in names:
    for metric in metrics:
        unit = units.get(metric, "CPU s/GB")
        print(f"  {name:<13} {metric:<26} {fmt(name, metric)} {unit}")
    direct, tunnel = med("direct", "rtt_ms"), med(name, "rtt_ms")
    if direct is not None and tunnel is not None:
        print(f"  {name:<13} {'rtt_overhead_ms':<26} {tunnel - direct:+.3f} ms (median vs direct)")
wg, gh = med("wireguard-go", "tcp1"), med("gatehouse", "tcp1")
ratio = f"{gh / wg:.2f}" if wg and gh is not None else "n/a"
gh = f"{gh:.3f}" if gh is not None else "n/a"
wg = f"{wg:.3f}" if wg is not None else "n/a"
print(f"dataplane: gatehouse={gh} wireguard-go={wg} ratio={ratio}")
EOF
}

main() {
    log "dataplane: $(nproc) cores, kernel $(uname -r), $("$WG_GO" --version | sed -n 1p), MTU $MTU, ${SECONDS_PER_RUN}s per run, $REPEATS repeats"
    [ "$ONLY_WG" -eq 1 ] && log "dataplane: --only-wireguard-go: Gatehouse not measured"
    if [ "$ONLY_WG" -ne 1 ]; then
        for b in "$BIN_DIR/gatehouse" "$BIN_DIR/gatehouse-edge"; do
            [ -x "$b" ] || { log "$b missing: run cargo build --release --bins (or --only-wireguard-go)"; exit 1; }
        done
    fi
    wait_idle
    setup_topology
    : >"$RESULTS"
    for REP in $(seq "$REPEATS"); do
        log "repeat $REP/$REPEATS (load $(cut -d' ' -f1 /proc/loadavg))"
        measure_direct
        measure_tunnel wireguard-go
        [ "$ONLY_WG" -eq 1 ] || measure_tunnel gatehouse
    done
    summarize
    OK=1
}

main
