#!/usr/bin/env bash
# The registration, race, check-in, guest, waiting-list, import and job tests of the API suite again, with every
# connection of the service going through a transaction pooler: PgBouncer >= 1.21 in transaction
# mode with max_prepared_statements (infra/scripts/pgbouncer.sh installs or builds it), as RDS
# Proxy multiplexes client connections onto server connections between transactions. nextest runs
# each test in a process of its own, so many server processes share the pooler at once.
# Creating and dropping the test databases goes straight to PostgreSQL (TEST_POOLER_URL, testkit).
#
#   infra/scripts/pooler-tests.sh            (part of infra/scripts/test.sh)
#
# Fails on any test failure, and on any "prepared statement" error in PostgreSQL's answers
# (what a pooler without prepared-statement support produces).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
infra/scripts/services.sh
bin="$(infra/scripts/pgbouncer.sh)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ept-pgbouncer.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PGB_DEFAULT_POOL_SIZE=20 PGB_MAX_CLIENT_CONN=2000 PGB_EXTRA="log_connections = 0
log_disconnections = 0" \
    infra/scripts/pgbouncer-config.sh "$port" 127.0.0.1 127.0.0.1 "${PG_PORT:-5432}" "$dir" >/dev/null
run_as=()
if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres "$dir"
    run_as=(runuser -u postgres --)
fi
"${run_as[@]}" "$bin" -d "$dir/pgbouncer.ini"
cleanup() {
    [[ -f "$dir/pgbouncer.pid" ]] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "pooler-tests: $("$bin" --version | head -1) on 127.0.0.1:$port, transaction mode" >&2

log="$(mktemp "${TMPDIR:-/tmp}/ept-pooler-tests.XXXXXX")"
set +e
TEST_POOLER_URL="postgres://postgres@127.0.0.1:$port/postgres" \
    cargo nextest run -p local-server --test api --no-fail-fast \
    -E 'test(/^(races|tickets|guests|outbox|events|checkin_lists|waitlist|import|exports)::/)' 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -q 'prepared statement' "$log"; then
    echo "pooler-tests: prepared-statement errors through the pooler" >&2
    status=1
fi
grep -E '^ *Summary' "$log" | tail -1 | sed 's/^ */pooler-tests: /' >&2
# The tests' connections really went through the pooler: its transaction count.
xacts="$(psql -h 127.0.0.1 -p "$port" -U postgres -d pgbouncer -Atc 'SHOW STATS' 2>/dev/null |
    awk -F'|' '$1 ~ /^ept_test_/ { n += $3 } END { print n + 0 }')"
echo "pooler-tests: $xacts transactions of the test databases went through the pooler" >&2
if [[ "$xacts" -lt 1000 ]]; then
    echo "pooler-tests: too few transactions through the pooler: the tests did not use it" >&2
    status=1
fi
rm -f "$log"
exit "$status"
