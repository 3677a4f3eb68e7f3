#!/usr/bin/env bash
# Policy evaluation benchmark: a generated 1,000-rule file (250 applications × 4 policies),
# ns per decision of the indexed `PolicySet::evaluate` against a naive linear scan over the same
# rules, both measured in one run (warm-up, median of 5 bounded runs). Takes about 10 s after
# the release build. The last line is
#   policy: rules=1000 ns_per_decision=<x> naive_ns=<y>
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p edge-policy --example bench_policy
exec target/release/examples/bench_policy
