#!/usr/bin/env bash
# Starts the local server on PORT (default 3001) with every API route: PostgreSQL (and
# Redis) started if needed, the database created and migrated by the server itself.
#   infra/scripts/dev.sh                 # then: curl localhost:3001/health
# Exports need an S3 bucket: unless EXPORTS_BUCKET is set, moto is started (infra/scripts/local-aws.sh,
# port MOTO_PORT, default 4566) with the bucket event-planner-core-local-exports, and only its S3 is
# used (jobs stay on the in-process queue).
# Environment: PORT, DATABASE_URL, JWT_SECRET, RUST_LOG, EXPORTS_BUCKET (see README "Configuration").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
infra/scripts/services.sh
if [[ -z "${EXPORTS_BUCKET:-}" ]]; then
    infra/scripts/local-aws.sh start >/dev/null
    export EXPORTS_BUCKET=event-planner-core-local-exports
    export S3_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT:-4566}"
    export AWS_REGION="${AWS_REGION:-eu-west-1}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
fi
exec cargo run --quiet -p local-server
