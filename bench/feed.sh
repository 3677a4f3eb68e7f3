#!/usr/bin/env bash
# Config feed latency: how long a change made through identity's admin API takes to reach a
# subscribed edge. Real processes on loopback: `gatehouse-identity serve --embedded` (SQLite in
# a temp directory) and `gatehouse-edge feed` (the follower `gatehouse-edge run` uses), which
# prints one line per applied feed message with its wall-clock time.
#
# 100 changes, one after another: each creates a connector (one revision) through
# `POST /admin/v1/connectors`; latency = the edge's arrival time of that revision minus the
# time just before the API request was sent (so it includes the API call itself). For scale,
# the same run measures the API round trip alone (api_*_ms). No root, no network beyond
# loopback; bounded: every wait has a timeout, about 10 s after the release build.
# The last line is
#   feed: p50_ms=<x> p99_ms=<y>
#
# Usage: bench/feed.sh [--changes N]
#   GATEHOUSE_BIN_DIR  where gatehouse-identity and gatehouse-edge are (default: build release)
set -euo pipefail
cd "$(dirname "$0")/.."

CHANGES=100
while [ $# -gt 0 ]; do
    case "$1" in
        --changes) CHANGES=$2; shift ;;
        *) echo "usage: bench/feed.sh [--changes N]" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "${GATEHOUSE_BIN_DIR:-}" ]; then
    cargo build --release -p identity -p edge-gateway --bins
    GATEHOUSE_BIN_DIR=target/release
fi
export GATEHOUSE_BIN_DIR CHANGES

exec python3 - <<'PY'
import json, os, queue, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.request

bins = os.path.abspath(os.environ["GATEHOUSE_BIN_DIR"])
changes = int(os.environ["CHANGES"])
work = tempfile.mkdtemp(prefix="gatehouse-bench-feed-")
procs = []

def cleanup():
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

def fail(msg):
    print(f"feed bench: {msg} (logs in {work})", file=sys.stderr)
    cleanup()
    sys.exit(1)

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

port = free_port()
base = f"http://127.0.0.1:{port}"
ident_log = open(os.path.join(work, "identity.log"), "w")
procs.append(subprocess.Popen(
    [f"{bins}/gatehouse-identity", "serve", "--embedded", os.path.join(work, "id"),
     "--listen", f"127.0.0.1:{port}"],
    stdout=ident_log, stderr=ident_log, start_new_session=True))

deadline = time.time() + 20
while True:
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
        break
    except Exception:
        if time.time() > deadline or procs[0].poll() is not None:
            fail("identity did not become healthy")
        time.sleep(0.05)

admin_token = open(os.path.join(work, "id", "admin.token")).read().strip()

def admin_post(path, body):
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

edge_log = open(os.path.join(work, "edge.log"), "w")
edge = subprocess.Popen(
    [f"{bins}/gatehouse-edge", "feed", "--identity", base,
     "--token-file", os.path.join(work, "id", "edge.token"),
     "--cache", os.path.join(work, "edge-cache.json")],
    stdout=subprocess.PIPE, stderr=edge_log, start_new_session=True, text=True)
procs.append(edge)
arrivals = queue.Queue()

def read_edge():
    for line in edge.stdout:
        try:
            m = json.loads(line)
            arrivals.put((m["revision"], m["at_us"] / 1000.0))
        except (ValueError, KeyError):
            pass

threading.Thread(target=read_edge, daemon=True).start()

def wait_revision(above, timeout=5.0):
    end = time.time() + timeout
    while True:
        left = end - time.time()
        if left <= 0:
            return None
        try:
            revision, at_ms = arrivals.get(timeout=left)
        except queue.Empty:
            return None
        if revision > above:
            return revision, at_ms

first = wait_revision(-1, timeout=10)
if first is None:
    fail("the edge received no snapshot")
revision = first[0]

latencies, api = [], []
for i in range(changes):
    sent_ms = time.time() * 1000
    admin_post("/admin/v1/connectors", {"name": f"bench-{i}", "routes": [f"10.{i % 250}.0.0/16"]})
    api.append(time.time() * 1000 - sent_ms)
    got = wait_revision(revision)
    if got is None:
        fail(f"change {i} did not reach the edge within 5 s")
    revision, at_ms = got
    latencies.append(at_ms - sent_ms)

cleanup()

def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]

print(f"changes={changes} api_p50_ms={pct(api, 50):.2f} api_p99_ms={pct(api, 99):.2f} "
      f"max_ms={max(latencies):.2f}")
print(f"feed: p50_ms={pct(latencies, 50):.2f} p99_ms={pct(latencies, 99):.2f}")
PY
