#!/usr/bin/env bash
# Starts the local server on PORT (default 3001) with every API route: PostgreSQL (and
# Redis) started if needed, the database created and migrated by the server itself.
#   infra/scripts/dev.sh                 # then: curl localhost:3001/health
# Environment: PORT, DATABASE_URL, JWT_SECRET, RUST_LOG (see README "Configuration").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
infra/scripts/services.sh
exec cargo run --quiet -p local-server
