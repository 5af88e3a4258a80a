#!/usr/bin/env bash
# The performance harness of issue 8, in one command:
#
#   infra/benchmarks/run.sh
#
# builds the local server and the Lambda function binaries in release, then runs the harness
# (infra/benchmarks/harness/benches/harness/, crate `harness`, cargo bench), which
#   - drops and re-creates the database ept_bench, starts target/release/local-server on a free
#     port against it (the server migrates it), seeds 110 000 events (100 000 of one organizer),
#     ticket types and pools of guests/tickets with INSERT ... SELECT generate_series,
#   - checks the plans of the hot queries with EXPLAIN (a Seq Scan of a hot table fails the run),
#   - drives the server over HTTP on 127.0.0.1: event list and search (p50/p99), event detail
#     without and then with REDIS_URL (server restarted), registrations (one hot ticket type;
#     spread over 50 events), validations at 16 and 64 clients, entries on a check-in list that
#     is not the default one at 16 and 64 clients and offline uploads of 500 entries at 4 and 8
#     uploaders (issue 15), then explains the check-in statements on the rows those loads wrote;
#     after the cached reads, each on a fresh server: registrations on a hot ticket type with the
#     waiting list off and on (a sold-out second ticket type with entries waiting on it), off, on,
#     off, on (issue 16); CSV imports of 5 000 rows, 3 times (issue 16); registrations and
#     validations plain and with an Idempotency-Key per request + a webhook of the organizer
#     (guest.registered, guest.checked_in) to a receiver of the harness on 127.0.0.1 answering
#     200, off, on, off, on, then keys only, then on with the deliveries made in process during
#     the load (issue 17; in the "on" loads the server's webhook worker is held during the load,
#     LOCAL_HOLD_QUEUES=webhooks, as the worker is a function of its own in AWS, and the
#     backlog's delivery is timed after it),
#   - runs the same writes with pgbench on the same database (registration.sql,
#     registration-naive.sql, validation.sql, checkin-list-entry.sql, checkin-batch.sql in this
#     directory; and, for issue 17, the service's own validation statement generated from
#     domain::checkin::scan::statement, plain and keyed with a webhook, alternated twice),
#   - measures the RSS of the server and of each Lambda function binary after its first request
#     (the functions under the project's Lambda runtime emulator, cargo-lambda's: .venv/bin/cargo-lambda,
#     installed by infra/scripts/tools.sh),
#   - prints the table and rewrites the generated block of infra/benchmarks/RESULTS.md.
# About 8-12 minutes after the build (of which the issue-16/17 loads take about 2.5). Needs
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379 and pgbench
# (started/installed by infra/scripts/services.sh if missing, except pgbench: apt-get install
# postgresql-client), and cargo-lambda (infra/scripts/tools.sh).
#
# Environment (all optional): BENCH_SECS (8) seconds per HTTP load, BENCH_PGBENCH_SECS (8),
# BENCH_WARMUP_SECS (1), BENCH_EVENTS (100000), BENCH_DB (ept_bench), BENCH_DB_POOL_SIZE
# (the server's DB_POOL_SIZE; default 16), BENCH_REDIS_URL, BENCH_RUST_LOG (info),
# BENCH_ONLY=integrations (seed, then only the issue-17 loads and their pgbench runs, printed, not
# written to RESULTS.md: a quick comparison while working on that path; with BENCH_EVENTS=1000
# it takes about 3 minutes).
# Exit status: 0, 2 when a hot query reads a table sequentially, 1 on failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

infra/scripts/services.sh
infra/scripts/tools.sh
command -v pgbench >/dev/null || { echo "run.sh: pgbench is missing (apt-get install postgresql-client)" >&2; exit 1; }

echo "run.sh: building the local server and the function binaries (release)..."
cargo build --release --quiet -p local-server -p events -p guests -p tickets -p health
echo "run.sh: building and running the harness (cargo bench -p harness --bench harness)..."
exec cargo bench --quiet -p harness --bench harness
