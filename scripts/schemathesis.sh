#!/usr/bin/env bash
# Checks that /openapi.json says exactly what the server does. Starts portal-api and one
# portal-worker on a port, a Postgres database, a ClickHouse database and a Redis namespace of their
# own (so it never meets a developer's running demo), seeds the demo partner, signs in (partner
# token, member token, API key) and runs schemathesis — pinned, from PyPI, in its own virtualenv —
# with every check, a fixed seed and a bounded number of examples. Any failure fails the script.
# Everything it started is stopped and dropped on exit.
#   bash scripts/schemathesis.sh                   # what scripts/test.sh runs
#   bash scripts/schemathesis.sh --max-examples 5  # extra arguments go to `schemathesis run`
# Needs the services (scripts/services.sh) and builds the binaries if they are not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LOG_TAG=schemathesis
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

REQUIREMENTS="$ROOT/scripts/schemathesis-requirements.txt"
SEED=${SCHEMATHESIS_SEED:-20261125}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
# The virtualenv is named by the pinned requirements, so changing them installs afresh.
VENV="$TOOLS_DIR/schemathesis-$(sha256sum "$REQUIREMENTS" | cut -c1-12)"

# 1. schemathesis and its dependencies, pinned, in their own virtualenv (`installed` is written only
#    once pip succeeded).
tool_venv "$VENV" 'import schemathesis' -r "$REQUIREMENTS"

# 2. A world of its own (scripts/world.sh): databases, Redis namespace, the demo partner, the API
#    and a worker.
# shellcheck source=scripts/world.sh
source "$ROOT/scripts/world.sh"
world_start portal_schemathesis
creds=$CREDS

# 3. Credentials: a partner access token, the API key, and a member (registered with a voucher).
json_post() { curl -fsS "$BASE$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
API_KEY=$(field "$creds" apiKey)
login=$(json_post /partner-auth/login \
  "{\"email\":\"$(field "$creds" adminEmail)\",\"password\":\"$(field "$creds" adminPassword)\"}")
PARTNER_TOKEN=$(field "$login" accessToken)
voucher=$(json_post /partner/vouchers '{"quantity":1}' \
  -H "authorization: Bearer $PARTNER_TOKEN" -H "x-api-key: $API_KEY")
member=$(json_post /auth/register \
  "{\"voucherCode\":\"$(field "$voucher" code)\",\"email\":\"member@schemathesis.example\",\"password\":\"member-password-1\",\"name\":\"Schema Thesis\"}" \
  -H "x-api-key: $API_KEY")
MEMBER_TOKEN=$(field "$member" accessToken)
export PARTNER_TOKEN MEMBER_TOKEN API_KEY
# The ids of the demo admin and of the API key, which the hooks keep from being demoted,
# deactivated or revoked mid-run (see scripts/schemathesis_hooks.py).
json_field() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin)['data']; print($1)"; }
PORTAL_ADMIN_ID=$(curl -fsS "$BASE/partner-auth/me" -H "authorization: Bearer $PARTNER_TOKEN" |
  json_field "d['id']")
PORTAL_API_KEY_ID=$(curl -fsS "$BASE/partner/api-keys" -H "authorization: Bearer $PARTNER_TOKEN" |
  API_KEY="$API_KEY" json_field \
    "next(k['id'] for k in d['apiKeys'] if __import__('os').environ['API_KEY'].startswith(k['prefix']))")
export PORTAL_ADMIN_ID PORTAL_API_KEY_ID
export PORTAL_CLASS_ID=yoga-flow-1 SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis_hooks.py"
[ -n "$PARTNER_TOKEN" ] && [ -n "$MEMBER_TOKEN" ] && [ -n "$API_KEY" ] &&
  [ -n "$PORTAL_ADMIN_ID" ] && [ -n "$PORTAL_API_KEY_ID" ] ||
  { log "could not sign in to the demo"; exit 1; }

# 4. The run: scripts/schemathesis.toml says which credential each security scheme takes;
#    scripts/schemathesis_hooks.py handles the few rules JSON Schema cannot state.
log "schemathesis --checks all, seed $SEED, at most $MAX_EXAMPLES examples per operation"
status=0
"$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
  --workers 2 --no-color --report-dir "$WORK/report" "$@" | tee "$WORK/schemathesis.out" || status=$?
if [ "$status" -eq 0 ]; then
  # schemathesis's summary reads "Test cases: N generated, N passed, M skipped".
  passed=$(sed -n 's/.* generated, \([0-9]*\) passed.*/\1/p' "$WORK/schemathesis.out" | tail -n1)
  echo "schemathesis: ${passed:-0} passed, 0 failed"
else
  log "the document and the server disagree: see the failures above"
fi
exit "$status"
