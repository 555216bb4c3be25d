#!/usr/bin/env bash
# Benchmarks (release build) against the real services; each prints a table next to the limit
# measured in the same run. See tests/src/bin/portal-bench*.rs for what is measured. Sizes via
# BENCH_EVENTS, BENCH_ANALYTICS_EVENTS, BENCH_CONCURRENCY, BENCH_EXPORT_ROWS, BENCH_BILLING_LARGE,
# BENCH_UNKNOWN_KEYS, BENCH_KEY_REQUESTS, BENCH_LOGINS; BENCH_S3=0 skips the export run against the
# S3-compatible store. The ingest bench sends every event as one member, so it turns the per-member
# limit off (MEMBER_EVENTS_PER_MINUTE=0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/services.sh
if [ "${BENCH_S3:-1}" != "0" ]; then ensure_s3_test_server; fi
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export RUST_LOG=${RUST_LOG:-warn}
cargo build --release --locked --workspace --bins
target/release/portal-bench
target/release/portal-bench-scale
target/release/portal-bench-exports
target/release/portal-bench-billing
target/release/portal-bench-logins
target/release/portal-bench-keys
bash scripts/test-cleanup.sh
