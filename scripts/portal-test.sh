#!/usr/bin/env bash
# The partner portal in a real browser: Playwright (from npm, locked in web/package-lock.json)
# drives Debian's Chromium (installed when missing; no browser download) against the real
# portal-api and portal-worker, in a world of their own (scripts/world.sh): the demo partner (A)
# and a second, empty partner (B). Every screen is checked with axe-core and at a phone width;
# a screenshot of each lands in target/portal-screenshots/.
#   bash scripts/portal-test.sh               # what scripts/test.sh runs
#   bash scripts/portal-test.sh -g "vouchers" # extra arguments go to `playwright test`
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=portal-test
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || apt_install chromium
command -v psql >/dev/null 2>&1 || apt_install postgresql-client

# The portal, built from the locked dependencies (Playwright among them; it downloads no browser).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
build_portal
export WEB_DIR="$ROOT/web/dist"

# shellcheck source=scripts/world.sh
source "$ROOT/scripts/world.sh"
world_start portal_browser

# Partner B: a second programme with one admin and nothing else.
b_email="admin-$WORLD@b.example"
b_password="b-admin-password-1"
"$BIN/portal-admin" client create --name "Other Gym" --slug "other-gym-$$" --timezone Europe/London >/dev/null
"$BIN/portal-admin" staff create --client "other-gym-$$" --email "$b_email" --password "$b_password" \
  --role admin --name "Bea Other" >/dev/null

export PORTAL_URL="$BASE" CHROMIUM
PORTAL_ADMIN_EMAIL=$(field "$CREDS" adminEmail)
PORTAL_ADMIN_PASSWORD=$(field "$CREDS" adminPassword)
PORTAL_VIEWER_EMAIL=$(field "$CREDS" viewerEmail)
PORTAL_VIEWER_PASSWORD=$(field "$CREDS" viewerPassword)
PORTAL_API_KEY=$(field "$CREDS" apiKey)
export PORTAL_ADMIN_EMAIL PORTAL_ADMIN_PASSWORD PORTAL_VIEWER_EMAIL PORTAL_VIEWER_PASSWORD PORTAL_API_KEY
export PORTAL_B_EMAIL="$b_email" PORTAL_B_PASSWORD="$b_password"
export PORTAL_SCREENSHOTS="$ROOT/target/portal-screenshots" PORTAL_TEST_OUTPUT="$ROOT/target/portal-test-results"
rm -rf "$PORTAL_SCREENSHOTS"

log "playwright against $BASE (chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
(cd "$ROOT/web" && npx playwright test "$@")
log "screenshots: $PORTAL_SCREENSHOTS ($(find "$PORTAL_SCREENSHOTS" -name '*.png' | wc -l) files)"
