#!/usr/bin/env bash
# The mixed load with invariants (issue 14): registrations with and without approval,
# cancellations, approvals, list reads and check-ins by id, code and signed payload on three
# events for MIXED_LOAD_SECS seconds (default 60), through the real job path; then the
# invariants in SQL (no capacity exceeded, seat counters equal to rows, every scan attempt
# logged, no ticket accepted twice, every job dispatched and done once, no 5xx).
# Not in the test command (a minute of load on 2 cores); run it after changing a hot path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
infra/scripts/services.sh
source infra/scripts/tools.sh
MIXED_LOAD_SECS="${MIXED_LOAD_SECS:-60}" exec cargo test -p local-server --test api mixed -- --ignored --nocapture
