#!/usr/bin/env bash
# Runs every test: builds the binaries the end-to-end tests start, then the whole workspace.
# On a fresh Debian/Ubuntu machine run as root, it first installs the stock tools the tests
# use (wireguard-go, wg, iperf3, curl, python3, iproute2); without root it says what is missing.
# Network-namespace tests skip with a reason when not root (and fail instead under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools iperf3:iperf3 curl:curl \
    python3:python3 ip:iproute2 ping:iputils-ping; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -ne 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "note: missing ${missing[*]}; the tests that need them will fail (install as root)" >&2
    fi
fi

# The real OIDC providers of the identity tests (npm `oidc-provider`, `jose`), from the lock file.
if [ ! -d tests/oidc-provider/node_modules ]; then
    echo "== installing the test OIDC providers (npm ci)"
    bash tests/oidc-provider/install.sh
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --release --bins
cargo test --release --workspace -- --test-threads=4 2>&1 | tee "$log"
# One closing line for the whole run: cargo prints a result line per test binary, the last of
# which (a crate's doc tests) may well be "0 passed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
