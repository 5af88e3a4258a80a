#!/usr/bin/env bash
# Size and cold start of every Lambda function, written to infra/benchmarks/FUNCTIONS.md.
#
#   infra/benchmarks/functions.sh [RUNS]        (default 5 cold starts per function)
#
# Size: the release binary of this machine (target/release/<bin>, stripped, thin LTO: the workspace's
# release profile), and, when `infra/scripts/build.sh` ran before, the arm64 `bootstrap` that SAM
# deploys (.aws-sam/build/<Function>/bootstrap) with its zip size (what Lambda downloads at a cold start).
#
# Cold start: process start to the first handled request, through the Lambda runtime emulator
# (cargo-lambda's, infra/scripts/lambda-emulator.sh). For each run: the invocation is sent first (the
# emulator holds it until a runtime asks for work), then the binary is started, and the time from
# its start until the invocation's response arrives is measured: runtime start-up, the function's
# init (configuration, pools, SDK clients) and the first event, including its first database
# connection. A second invocation of the same process is the warm latency. Each function gets an
# event that exercises its real path (a database query), against local PostgreSQL and Redis
# (infra/scripts/services.sh) and moto's SQS. Native x86_64 binaries: this machine cannot run the
# arm64 ones (no emulation), and Lambda adds its own sandbox start and code download on top.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUNS="${1:-5}"
OUT="$ROOT/infra/benchmarks/FUNCTIONS.md"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/functions-bench.XXXXXX")"
say() { printf 'functions.sh: %s\n' "$*" >&2; }

# function name (binary) -> template logical id
declare -A LOGICAL=(
    [events]=EventsFunction [guests]=GuestsFunction [tickets]=TicketsFunction [health]=HealthFunction
    [email-worker]=EmailWorkerFunction [ticket-worker]=TicketWorkerFunction
    [outbox-sweep]=OutboxSweepFunction [health-probe]=HealthProbeFunction [migrate]=MigrateFunction
)
FUNCTIONS=(events guests tickets health email-worker ticket-worker outbox-sweep health-probe migrate)

infra/scripts/services.sh >/dev/null
source infra/scripts/tools.sh
PY="$ROOT/.venv/bin/python"

say "building the release binaries (cargo build --release)..."
build_start=$(date +%s)
pkgs=(); for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "$f"); done
cargo build --release --quiet "${pkgs[@]}"
say "release build: $(( $(date +%s) - build_start )) s"

# --- fixtures: a database, a moto with two queues, an emulator ------------------------------------
PG="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=ept_bench_functions
psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -qc "CREATE DATABASE $DB" >/dev/null
DATABASE_URL="${PG%/*}/$DB"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
EMU_PORT=$(free_port)
cleanup() {
    [[ -n "${FN_PID:-}" ]] && kill "$FN_PID" 2>/dev/null || true
    infra/scripts/lambda-emulator.sh stop "$EMU_PORT" 2>/dev/null || true
    kill "$MOTO_PID" 2>/dev/null || true
    psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
read -r EMAIL_QUEUE_URL TICKET_QUEUE_URL < <("$PY" - <<'PY'
import boto3, os
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
urls = [sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("bench-email", "bench-ticket-generation")]
print(*urls)
PY
)
LAMBDA_EMULATOR_TIMEOUT=60 infra/scripts/lambda-emulator.sh start "$EMU_PORT" 2>/dev/null

# --- events ----------------------------------------------------------------------------------------
JWT_SECRET=bench-secret
TICKET_SIGNING_KEY=$("$PY" -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
"$PY" - "$WORK" "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, uuid
work, secret = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench-organizer", "role": "organizer", "exp": 9999999999}).encode())
sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
token = f"{head}.{body}.{sig}"
base = json.load(open("infra/fixtures/apigw-v2-get-health-ready.json"))
def http(name, route, path, auth):
    e = json.loads(json.dumps(base))
    e["routeKey"] = e["requestContext"]["routeKey"] = route
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    if auth:
        e["headers"]["authorization"] = f"Bearer {token}"
    json.dump(e, open(f"{work}/{name}.json", "w"))
http("events", "ANY /api/events", "/api/events", True)
http("events-noauth", "ANY /api/events", "/api/events", False)  # 401 before any I/O: the harness's floor
http("guests", "ANY /api/events/{eventId}/guests", "/api/events/1/guests", True)
http("tickets", "GET /api/events/{eventId}/stats", "/api/events/1/stats", True)
http("health", "GET /health/ready", "/health/ready", False)
sqs = json.load(open("infra/fixtures/sqs-event.json"))
def job(name, job_type, payload):
    e = json.loads(json.dumps(sqs))
    e["Records"] = e["Records"][:1]
    e["Records"][0]["body"] = json.dumps({"jobId": str(uuid.uuid4()), "type": job_type, "payload": payload,
                                          "createdAt": "2026-11-24T09:00:00Z"})
    json.dump(e, open(f"{work}/{name}.json", "w"))
# Jobs about rows that do not exist: a real database read, then a permanent failure (no email sent).
job("email-worker", "registration_confirmation", {"guestId": 999999999})
job("ticket-worker", "generate_ticket", {"ticketId": 999999999})
scheduled = open("infra/fixtures/eventbridge-scheduled-event.json").read()
open(f"{work}/outbox-sweep.json", "w").write(scheduled)
open(f"{work}/health-probe.json", "w").write(scheduled)
open(f"{work}/migrate.json", "w").write("{}")
PY

fn_env() {
    local name="$1"
    printf '%s\n' \
        "AWS_LAMBDA_FUNCTION_NAME=$name" "AWS_LAMBDA_FUNCTION_VERSION=\$LATEST" \
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512" "AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:$EMU_PORT/.rt/$name" \
        "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/$name" "AWS_LAMBDA_LOG_STREAM_NAME=bench" \
        "AWS_REGION=$AWS_REGION" "AWS_ACCESS_KEY_ID=test" "AWS_SECRET_ACCESS_KEY=test" "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" \
        "RUST_LOG=warn" "DATABASE_URL=$DATABASE_URL" "DB_SSLMODE=${DB_SSLMODE:-disable}" "JWT_SECRET=$JWT_SECRET" "TICKET_SIGNING_KEY=$TICKET_SIGNING_KEY" \
        "REDIS_URL=redis://127.0.0.1:6379" "NOTIFICATION_SERVICE_URL=http://127.0.0.1:9/unused" \
        "EMAIL_QUEUE_URL=$EMAIL_QUEUE_URL" "TICKET_QUEUE_URL=$TICKET_QUEUE_URL" "SERVICE_NAME=bench"
}

now_us() { echo $(( $(date +%s%N) / 1000 )); }

# One cold start of function $1 with the event $WORK/${2:-$1}.json: prints "<cold ms> <warm ms>".
cold_start() {
    local name="$1" event="$WORK/${2:-$1}.json" url t0 t1 t2 code
    url="http://127.0.0.1:$EMU_PORT/2015-03-31/functions/$name/invocations"
    curl -s -o "$WORK/out.json" -w '%{http_code}' --max-time 60 -X POST --data-binary "@$event" "$url" >"$WORK/code" &
    local curl_pid=$!
    sleep 0.3 # the invocation is queued in the emulator before the process starts
    local -a envs; mapfile -t envs < <(fn_env "$name")
    t0=$(now_us)
    env -i PATH="$PATH" "${envs[@]}" "target/release/$name" </dev/null >/dev/null 2>"$WORK/$name.err" &
    FN_PID=$!
    wait "$curl_pid" || true
    t1=$(now_us)
    code="$(cat "$WORK/code")"
    if [[ "$code" != 200 ]]; then
        say "$name: HTTP $code: $(head -c 300 "$WORK/out.json") $(head -c 500 "$WORK/$name.err")"
        kill "$FN_PID" 2>/dev/null || true; wait "$FN_PID" 2>/dev/null || true; FN_PID=
        return 1
    fi
    cp "$WORK/out.json" "$WORK/$name.response.json"
    local w0; w0=$(now_us)
    curl -s -o /dev/null --max-time 60 -X POST --data-binary "@$event" "$url"
    t2=$(now_us)
    kill "$FN_PID" 2>/dev/null || true; wait "$FN_PID" 2>/dev/null || true; FN_PID=
    "$PY" -c "print(f'{($t1-$t0)/1000:.1f} {($t2-$w0)/1000:.1f}')"
}

# The migrate function applies the migrations on its first invocation (not counted).
cold_start migrate >/dev/null

declare -A COLD WARM
for name in "${FUNCTIONS[@]}"; do
    colds=() warms=()
    for _ in $(seq 1 "$RUNS"); do
        read -r c w < <(cold_start "$name") || { say "$name failed"; exit 1; }
        colds+=("$c"); warms+=("$w")
    done
    COLD[$name]="${colds[*]}"; WARM[$name]="${warms[*]}"
    say "$name: cold ${colds[*]} ms, warm ${warms[*]} ms; first response: $(head -c 160 "$WORK/$name.response.json")"
done

# The harness's own share: events answering 401 (no token) does no I/O at all, so its warm time is
# the emulator's HTTP relay plus curl, which every warm figure above includes.
floors=()
for _ in $(seq 1 "$RUNS"); do
    read -r _c w < <(cold_start events events-noauth) || { say "floor measurement failed"; exit 1; }
    floors+=("$w")
done
FLOOR="$("$PY" -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.1f}')" "${floors[@]}")"
say "harness floor (events, 401 without I/O, warm): ${floors[*]} ms, median $FLOOR"

# --- report ----------------------------------------------------------------------------------------
export RUNS OUT FLOOR
for name in "${FUNCTIONS[@]}"; do
    bootstrap=".aws-sam/build/${LOGICAL[$name]}/bootstrap"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(stat -c %s "target/release/$name")" \
        "$( [[ -f $bootstrap ]] && stat -c %s "$bootstrap" || echo -)" "${COLD[$name]}" "${WARM[$name]}"
done >"$WORK/results.tsv"
"$PY" - "$WORK/results.tsv" <<'PY'
import io, os, platform, statistics, subprocess, sys, zipfile, datetime
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
logical = {"events": "EventsFunction", "guests": "GuestsFunction", "tickets": "TicketsFunction",
           "health": "HealthFunction", "email-worker": "EmailWorkerFunction", "ticket-worker": "TicketWorkerFunction",
           "outbox-sweep": "OutboxSweepFunction", "health-probe": "HealthProbeFunction", "migrate": "MigrateFunction"}
def mb(n): return f"{int(n) / 1e6:.1f} MB" if n != "-" else "-"
def zipped(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    return len(buf.getvalue())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
runs = os.environ["RUNS"]
lines = [
    "# Lambda functions: binary size and cold start",
    "",
    f"Measured by `infra/benchmarks/functions.sh {runs}` on {datetime.date.today().isoformat()}: {os.cpu_count()} cores ({cpu}), {rustc}.",
    "Re-run it after changing dependencies or the release profile; it rewrites this file.",
    "",
    "- **x86_64 release**: `target/release/<bin>` (workspace release profile: opt-level 3, thin LTO, 1 codegen unit, stripped).",
    "- **arm64 bootstrap**: what `infra/scripts/build.sh` (sam build, cargo-lambda + zig) puts in `.aws-sam/build/<Function>/bootstrap`"
    " and SAM deploys; **zip** is that file deflated (level 9), about what Lambda downloads on a cold start. `-` = not built.",
    f"- **cold start**: median (min–max) of {runs} runs, from the start of the process to the response of its first invocation, through"
    " cargo-lambda's runtime emulator on this machine (x86_64 binaries: arm64 cannot run here). It includes the runtime start,"
    " the function's init (configuration, database pool, SDK clients) and the first event with its first database connection;"
    " Lambda's own sandbox start and code download come on top in AWS (`Init Duration` in the REPORT log line covers the init part).",
    f"- **warm**: the second invocation of the same process (median). It includes the harness's own round trip (curl → emulator →"
    f" runtime → emulator → curl): {os.environ['FLOOR']} ms here, measured as the warm time of `events` answering 401 to a request"
    " without a token (no I/O at all). The rest is the function's work: one query on a local PostgreSQL, Redis/SQS pings.",
    "",
    "| function | first event | x86_64 release | arm64 bootstrap | arm64 zip | cold start (ms) | warm (ms) |",
    "|---|---|---:|---:|---:|---:|---:|",
]
events = {"events": "GET /api/events (JWT)", "guests": "GET /api/events/1/guests", "tickets": "GET /api/events/1/stats",
          "health": "GET /health/ready", "email-worker": "SQS: registration_confirmation (unknown guest)",
          "ticket-worker": "SQS: generate_ticket (unknown ticket)", "outbox-sweep": "schedule (empty outbox)",
          "health-probe": "schedule (PostgreSQL, Redis, SQS)", "migrate": "`{}` (up to date)"}
for name, x86, arm, cold, warm in rows:
    c = [float(v) for v in cold.split()]
    w = [float(v) for v in warm.split()]
    boot = f".aws-sam/build/{logical[name]}/bootstrap"
    z = mb(zipped(boot)) if arm != "-" else "-"
    lines.append(f"| {name} | {events[name]} | {mb(x86)} | {mb(arm)} | {z} | {statistics.median(c):.0f} ({min(c):.0f}–{max(c):.0f}) | {statistics.median(w):.1f} |")
open(os.environ["OUT"], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
say "written: $OUT"
