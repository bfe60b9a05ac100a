#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from /openapi.json for
# every route, with a fixed seed, and checks that nothing answers 5xx and that every
# response matches its documented schema and content type.
# Usage: .ci/schemathesis.sh <path to schemathesis>
set -euo pipefail
cd "$(dirname "$0")/.."
st="$1"
cargo build --quiet -p users-server
bin="${CARGO_TARGET_DIR:-target}/debug/users-server"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="sqlite://$work/schemathesis.db" MAIL_DIR="$work/mail" BIND_ADDR="127.0.0.1:$port" \
  RATE_LIMIT_PER_IP_PER_MINUTE=0 LOGIN_MAX_FAILURES=100 JWT_SECRET="schemathesis-$(date +%s%N)" RUST_LOG=warn \
  WEBAUTHN_RP_ID=localhost
# (WEBAUTHN_RP_ID: on an IP-address PUBLIC_URL passkeys are off and their routes answer
# 503 PASSKEYS_NOT_CONFIGURED, as the contract says; a host name turns them on, so they
# are fuzzed like every other route.)
password="schemathesis admin passphrase"
"$bin" create-user --email st-admin@example.com --password "$password" --superuser > /dev/null
"$bin" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break; sleep 0.2; done
token() {
  curl -fsS "http://127.0.0.1:$port/auth/jwt/login" -d username=st-admin@example.com --data-urlencode "password=$password" \
    | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
run() {
  "$st" run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --seed 20261126 --max-examples 40 --header "Authorization: Bearer $(token)" "$@"
}
# A generated logout or password change revokes the token (by design), so those two
# operations run last, on their own, each with a fresh token.
run --exclude-operation-id-regex '^(update_me|logout)$'
run --include-operation-id update_me
run --include-operation-id logout
# our own 5xx paths log these; actix's complaints about malformed requests are not ours
if grep -E 'internal error|request failed' "$work/server.log"; then
  echo "the server logged internal errors during the run" >&2
  exit 1
fi
