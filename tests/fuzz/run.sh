#!/usr/bin/env bash
# Runs every fuzz target for a while; fails if any target finds a crash.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 20 per target; TARGETs default to all of them. cargo-fuzz needs nightly
# compiler flags: on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. New inputs go to
# target/corpus/<target> (ignored by git); the committed seeds in corpus/<target> are only read.
# A crashing input lands in artifacts/<target>/ and is printed as hex.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${1:-20}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir .)
fi

# `--fuzz-dir .` throughout: cargo-fuzz otherwise looks for `fuzz/` beside the outer workspace.
started="$(mktemp)"
trap 'rm -f "$started"' EXIT
failed=()
for target in "${targets[@]}"; do
    echo "== $target (${seconds}s)"
    mkdir -p "target/corpus/$target" "corpus/$target"
    log="target/fuzz-$target.log"
    # libFuzzer reports every new input; keep that in a log and show the totals (or the crash).
    if cargo fuzz run --fuzz-dir . "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added))' "$log" || true
    else
        tail -n 60 "$log"
        failed+=("$target")
        while IFS= read -r crash; do
            echo "crash input $crash: $(od -An -v -tx1 "$crash" | tr -d ' \n')"
        done < <(find "artifacts/$target" -type f -newer "$started" 2>/dev/null)
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "no crashes in: ${targets[*]}"
