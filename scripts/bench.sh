#!/usr/bin/env bash
# Benchmarks (release build) against the real services; prints a table. See
# tests/src/bin/portal-bench.rs for what is measured. Sizes via BENCH_EVENTS,
# BENCH_ANALYTICS_EVENTS, BENCH_CONCURRENCY.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export RUST_LOG=${RUST_LOG:-warn}
cargo run --release --locked -p portal-tests --bin portal-bench
bash scripts/test-cleanup.sh
