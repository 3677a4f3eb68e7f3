#!/usr/bin/env bash
# Revocation benchmark: time from the admin API call that takes a device's access away to the
# closed live flow, with real processes (embedded gatehouse-identity, gatehouse-edge following
# its feed, an enrolled `gatehouse up` client, namespaces). The driver is the e2e crate's
# `revocation` example (tests/e2e/examples/revocation.rs):
#   REVOCATIONS (default 20) rounds: open a TCP flow that sends a byte every 20 ms, apply a
#   policy without the user's access through POST /admin/v1/policy, time until the client's
#   socket sees the edge's reset; then one device revocation (peer removed too).
# Last line: revocation: p50_ms=<x> max_ms=<y>  (goal: max under 1000; Cloudflare documents
# 20-60 s for revoking access to live sessions).
#
# Usage (root): bench/revocation.sh
#   GATEHOUSE_BIN_DIR  where gatehouse, gatehouse-edge, gatehouse-identity are
#                      (default: target/release, built here if missing)
#   REVOCATIONS        policy rounds (default 20)
# Needs: iproute2, python3. Bounded: each round waits at most 25 s; about 1 minute in all.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "revocation.sh: needs root (network namespaces)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export GATEHOUSE_BIN_DIR=${GATEHOUSE_BIN_DIR:-$ROOT/target/release}
if [ "$GATEHOUSE_BIN_DIR" = "$ROOT/target/release" ]; then
    cargo build --release -q -p client -p edge-gateway -p identity
fi
for b in gatehouse gatehouse-edge gatehouse-identity; do
    [ -x "$GATEHOUSE_BIN_DIR/$b" ] || { echo "missing $GATEHOUSE_BIN_DIR/$b" >&2; exit 1; }
done
exec timeout 900 cargo run --release -q -p e2e --example revocation
