#!/usr/bin/env bash
# Every statement under clickhouse/ and every example query of clickhouse/README.md on the
# ClickHouse 18.16 server (TEST_CLICKHOUSE_URL, default http://127.0.0.1:8123) and on a current
# engine (chDB from PyPI, pinned in scripts/ch-compat-requirements.txt, in its own virtualenv), on
# the same small data set: exit 0 only when every statement runs on both and every answer agrees.
# Needs the services (scripts/services.sh); run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=ch-compat
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

REQUIREMENTS="$ROOT/scripts/ch-compat-requirements.txt"
VENV="$TOOLS_DIR/chdb-$(sha256sum "$REQUIREMENTS" | cut -c1-12)"
tool_venv "$VENV" 'import chdb' -r "$REQUIREMENTS"
exec "$VENV/bin/python" scripts/ch_compat.py \
  --clickhouse-url "${TEST_CLICKHOUSE_URL:-http://127.0.0.1:8123}" "$@"
