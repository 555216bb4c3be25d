#!/usr/bin/env bash
# Starts an S3-compatible server for the storage tests (moto's standalone server, from PyPI, in its
# own virtualenv) on 127.0.0.1:${S3_TEST_PORT:-4566} and creates the bucket the tests use. Idempotent:
# when the server already answers it only makes sure the bucket exists.
# The tests use any S3-compatible endpoint given as TEST_S3_URL (MinIO, Ceph, a real bucket's
# endpoint…) with TEST_S3_BUCKET, TEST_S3_ACCESS_KEY_ID and TEST_S3_SECRET_ACCESS_KEY; this script is
# only the default.
set -euo pipefail

LOG_TAG=s3-test-server
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PORT=${S3_TEST_PORT:-4566}
BUCKET=${TEST_S3_BUCKET:-portal-test}
MOTO_VERSION=5.2.5
TOOLS=$TOOLS_DIR
VENV="$TOOLS/moto-$MOTO_VERSION"
URL="http://127.0.0.1:$PORT"

up() { curl -fsS -o /dev/null "$URL/moto-api/" 2>/dev/null; }

command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
if ! up; then
  tool_venv "$VENV" 'import moto.server' "moto[server]==$MOTO_VERSION"
  log "starting the S3-compatible test server on $URL"
  mkdir -p "$TOOLS/log"
  setsid nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" \
    >"$TOOLS/log/moto.log" 2>&1 </dev/null &
  wait_for "the S3 test server" 30 up || { log "see $TOOLS/log/moto.log"; exit 1; }
fi
# Creating an existing bucket is answered 200 (us-east-1) or 409: both leave it there.
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT "$URL/$BUCKET")
case "$code" in
  200|409) log "S3 test server up at $URL, bucket $BUCKET" ;;
  *) log "could not create bucket $BUCKET (HTTP $code)"; exit 1 ;;
esac
