#!/usr/bin/env bash
# Benchmarks (release build) against the real services; each prints a table next to the limit
# measured in the same run. See tests/src/bin/portal-bench*.rs for what is measured. Sizes via
# BENCH_EVENTS, BENCH_ANALYTICS_EVENTS, BENCH_CONCURRENCY, BENCH_EXPORT_ROWS, BENCH_BILLING_LARGE,
# BENCH_UNKNOWN_KEYS, BENCH_KEY_REQUESTS, BENCH_LOGINS; BENCH_S3=0 skips the export run against the
# S3-compatible store. The ingest bench sends every event as one member, so it turns the per-member
# limit off (MEMBER_EVENTS_PER_MINUTE=0).
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=bench
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bash scripts/services.sh
if [ "${BENCH_S3:-1}" != "0" ]; then ensure_s3_test_server; fi
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export RUST_LOG=${RUST_LOG:-warn}
cargo build --release --locked --workspace --bins
# Every bench binary runs even when an earlier one fails; the failures are named at the end and
# the script then exits 1.
failed=()
for bench in portal-bench portal-bench-scale portal-bench-exports portal-bench-billing \
             portal-bench-logins portal-bench-keys; do
  if ! "target/release/$bench"; then
    failed+=("$bench")
    log "$bench failed (its error is above)"
  fi
done
bash scripts/test-cleanup.sh
if [ ${#failed[@]} -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
