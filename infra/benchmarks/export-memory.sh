#!/usr/bin/env bash
# Exports of any size in flat memory (issue 16, item 3): the guest export of an event with 10 000
# and then 100 000 guests, each in its own process, through the real build_export code (keyset
# pages of 1000 rows, CSV, S3 multipart parts of 5 MiB) into moto's S3, with the process's memory
# before the export and its peak (VmHWM) after; the file is then downloaded through its presigned
# link and read by Python's csv module (exactly N rows). Flat memory = the two peaks roughly equal.
#
#   infra/benchmarks/export-memory.sh            # prints one line per size and a Markdown table
#
# Environment: EXPORT_SIZES (default "10000 100000"), MOTO_PORT (default 4577: its own moto, stopped
# at the end), DATABASE_URL (testkit's: the local PostgreSQL; each run gets its own database).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source infra/scripts/tools.sh
infra/scripts/services.sh >/dev/null
export MOTO_PORT="${MOTO_PORT:-4577}"
started_moto=0
if ! (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null; then
    infra/scripts/local-aws.sh start >/dev/null
    started_moto=1
fi
cleanup() { [[ $started_moto == 1 ]] && infra/scripts/local-aws.sh stop; }
trap cleanup EXIT
export EXPORTS_BUCKET="export-bench" S3_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

cargo bench -q -p harness --bench export_memory --no-run
lines=()
for n in ${EXPORT_SIZES:-10000 100000}; do
    line="$(cargo bench -q -p harness --bench export_memory -- "$n" | grep '^export_memory')"
    echo "$line"
    lines+=("$line")
done

val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
echo
echo "| guests | build | rows/s | file | RSS before | peak (VmHWM) | peak − RSS before | Python csv rows |"
echo "|---|---|---|---|---|---|---|---|"
for l in "${lines[@]}"; do
    printf '| %s | %s s | %s | %s MiB | %s MiB | %s MiB | %s MiB | %s |\n' \
        "$(val guests "$l")" "$(val build_s "$l")" "$(val rows_per_s "$l")" "$(val file_mib "$l")" \
        "$(val rss_before_mib "$l")" "$(val peak_mib "$l")" "$(val peak_growth_mib "$l")" "$(val python_csv_rows "$l")"
done
