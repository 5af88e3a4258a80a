#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API with schemathesis, against the local server and the
# OpenAPI document it serves (issue 14): every operation gets generated valid and invalid
# inputs, with a token and the ids of real records, and every answer must be
#   not_a_server_error, status_code_conformance, response_schema_conformance,
#   content_type_conformance.
#
#   infra/scripts/fuzz.sh                     # the test command's pass: organizer token, 25 examples, seed 1
#   FUZZ_LONG=1 infra/scripts/fuzz.sh         # longer: 300 examples, every phase, organizer + admin + scanner
#
# Environment: FUZZ_EXAMPLES, FUZZ_SEED (1), FUZZ_PHASES, FUZZ_ROLES, FUZZ_PORT (a free port).
# Exit status: schemathesis's (0 when every check passed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ "${FUZZ_LONG:-0}" == 1 ]]; then
    EXAMPLES="${FUZZ_EXAMPLES:-300}"; PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
    ROLES="${FUZZ_ROLES:-organizer admin scanner}"
else
    EXAMPLES="${FUZZ_EXAMPLES:-25}"; PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing}"
    ROLES="${FUZZ_ROLES:-organizer}"
fi
SEED="${FUZZ_SEED:-1}"

infra/scripts/services.sh >/dev/null
source infra/scripts/tools.sh
cargo build --quiet -p local-server
SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/local-server"

PG="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="ept_fuzz_$$"
PORT="${FUZZ_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")"
export DATABASE_URL="${PG%/*}/$DB" JWT_SECRET="fuzz-$$" PORT RUST_LOG="${RUST_LOG:-warn}"
export TICKET_SIGNING_KEY="$(.venv/bin/python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
unset REDIS_URL EMAIL_QUEUE_URL TICKET_QUEUE_URL
"$SERVER_BIN" >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "fuzz.sh: the server did not start" >&2; exit 1; }
    sleep 0.2
done

# Real records for the path parameters: a published event of org-1 with a ticket type, a
# registered guest with its ticket, and an export.
ORG="$("$SERVER_BIN" token organizer org-1)"
api() { curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $ORG" -H 'content-type: application/json' ${3:+-d "$3"}; }
field() { .venv/bin/python -c "import json,sys; d=json.load(sys.stdin)['data']; print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
EVENT_JSON="$(api POST /api/events '{"title":"Fuzz Conference","eventDate":"2099-06-01T09:00:00Z","location":"Paris","maxAttendees":1000,"ticketTypes":[{"name":"Standard","price":10,"quantity":900}]}')"
EVENT_ID="$(field "d['id']" <<<"$EVENT_JSON")"
TYPE_ID="$(field "d['ticketTypes'][0]['id']" <<<"$EVENT_JSON")"
api PATCH "/api/events/$EVENT_ID" '{"status":"published"}' >/dev/null
REG="$(api POST "/api/events/$EVENT_ID/guests" "{\"firstName\":\"Ada\",\"lastName\":\"Lovelace\",\"email\":\"ada@example.com\",\"ticketTypeId\":$TYPE_ID}")"
GUEST_ID="$(field "d['guest']['id']" <<<"$REG")"
TICKET_ID="$(field "d['ticket']['id']" <<<"$REG")"
# An export of it (no EXPORTS_BUCKET here: its job ends it `failed`, with the reason, as documented).
EXPORT_ID="$(field "d['id']" <<<"$(api POST "/api/events/$EVENT_ID/exports" '{"kind":"guests"}')")"
cat >"$WORK/schemathesis.toml" <<TOML
[parameters]
"path.id" = $EVENT_ID
"path.eventId" = $EVENT_ID
"path.ticketTypeId" = $TYPE_ID
"path.guestId" = $GUEST_ID
"path.ticketId" = $TICKET_ID
"path.exportId" = $EXPORT_ID
TOML

status=0
for role in $ROLES; do
    case "$role" in
        scanner) TOKEN="$("$SERVER_BIN" token scanner scanner-1 org-1)" ;;
        *) TOKEN="$("$SERVER_BIN" token "$role" "$role-1")" ;;
    esac
    [[ "$role" == organizer ]] && TOKEN="$ORG"
    echo "fuzz.sh: $role token, $EXAMPLES examples per operation, phases $PHASES, seed $SEED"
    .venv/bin/schemathesis --config-file "$WORK/schemathesis.toml" run "http://127.0.0.1:$PORT/api/openapi.json" \
        -H "Authorization: Bearer $TOKEN" \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
        --max-examples "$EXAMPLES" --seed "$SEED" --phases "$PHASES" --no-color || status=$?
done
exit "$status"
