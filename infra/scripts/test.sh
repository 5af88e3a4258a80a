#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# formatting, lints, template lint, unit + integration tests against the real PostgreSQL,
# and the Lambda functions driven through cargo-lambda's runtime emulator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "local services (PostgreSQL, Redis)"
infra/scripts/services.sh

step "developer tools (.venv: cargo-lambda, SAM CLI, cfn-lint, moto)"
source infra/scripts/tools.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "template lint (cfn-lint, sam validate --lint)"
infra/scripts/lint-template.sh

step "tests"
# Databases of tests killed half-way in earlier runs.
psql "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'ept\_test\_%'" 2>/dev/null |
  while read -r db; do psql "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
TEST_LOG="$(mktemp "${TMPDIR:-/tmp}/ept-tests.XXXXXX")"
trap 'rm -f "$TEST_LOG"' EXIT
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$TEST_LOG"
  passed=$(grep -E '^ *Summary .* tests run:' "$TEST_LOG" | tail -1 | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  failed=$(grep -E '^ *Summary .* tests run:' "$TEST_LOG" | tail -1 | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
else
  cargo test --workspace --no-fail-fast 2>&1 | tee "$TEST_LOG"
  passed=$(grep -E '^test result:' "$TEST_LOG" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
  failed=$(grep -E '^test result:' "$TEST_LOG" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
fi
step "through a transaction pooler (PgBouncer >= 1.21, infra/scripts/pooler-tests.sh)"
pooler_status=0
infra/scripts/pooler-tests.sh >"$TEST_LOG.pooler" 2>&1 || pooler_status=$?
if [[ "$pooler_status" == 0 ]]; then grep '^pooler-tests:' "$TEST_LOG.pooler"; else cat "$TEST_LOG.pooler"; fi
rm -f "$TEST_LOG.pooler"
[[ "$pooler_status" == 0 ]] || { echo "the tests through the pooler failed" >&2; exit 1; }

step "OpenAPI document (openapi-spec-validator)"
.venv/bin/openapi-spec-validator functions/health/openapi.json

step "fuzzing the HTTP API (schemathesis, infra/scripts/fuzz.sh)"
infra/scripts/fuzz.sh
step "done"
# The closing line CI reads: the test counts of the Rust suite.
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
