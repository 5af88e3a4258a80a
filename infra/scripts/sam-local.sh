#!/usr/bin/env bash
# Every function of template.yaml under `sam local`, in Lambda containers of a private Docker daemon,
# against the local PostgreSQL, Redis and moto (SQS) - on a machine without Docker Hub or ECR.
#
#   infra/scripts/sam-local.sh [smoke]        the smoke run (default): prepares everything (below), then
#                                             - MigrateFunction: `sam local invoke` with {} (applies migrations/
#                                               to a fresh database) and with the CloudFormation Create fixture,
#                                               its ResponseURL pointed at a local stand-in (checks the PUT answer)
#                                             - `sam local start-api` on a free port: real requests to the Health,
#                                               Events, Guests and Tickets functions (health, create + publish +
#                                               list events, register a guest, duplicate, guest list, ticket,
#                                               scanner key, stats, QR PNG, check-in), each status and body checked
#                                             - OutboxSweepFunction (schedule fixture): relays the registration's
#                                               jobs to moto's queues; TicketWorkerFunction and EmailWorkerFunction
#                                               with SQS events in the shape of infra/fixtures/sqs-event.json
#                                               carrying the real messages received from those queues (no
#                                               batchItemFailures; processed_jobs, the stored QR code and the
#                                               e-mails the notification stand-in received are checked); a poison
#                                               message must come back as a batch item failure
#                                             - HealthProbeFunction (schedule fixture): Healthy, DatabaseUp, RedisUp,
#                                               QueueUp all 1 (QueueUp pings the three queues, webhooks included)
#                                             WebhooksFunction and WebhookWorkerFunction are built and configured
#                                             (WEBHOOKS_QUEUE_URL) but not called by the smoke yet: use start-api / invoke
#                                             prints a table (function, how run, result, seconds), exits 1 on any failure
#   infra/scripts/sam-local.sh start-api      prepares and migrates, then `sam local start-api` in the foreground
#                                             on SAM_LOCAL_PORT (default 3000); prints a development token
#   infra/scripts/sam-local.sh invoke FUNCTION [EVENT.json]   prepares, then one `sam local invoke` (event {} by default)
#
# Preparation (every mode):
#   1. .venv tools (tools.sh); `infra/scripts/build.sh --x86` under `nice -n 19` with CARGO_BUILD_JOBS=1
#      (override: CARGO_BUILD_JOBS, SAM_LOCAL_NICE) unless .aws-sam holds an x86_64 build of the same sources
#      (sha256 of the tracked and untracked sources, recorded in .aws-sam/.sam-local-x86.stamp)
#   2. PostgreSQL and Redis (services.sh); a moto of its own on 127.0.0.1:SAM_LOCAL_MOTO_PORT (default 4577,
#      so that no other poller takes its messages) with the service's queues (local-aws.sh)
#   3. the private dockerd and the image local/lambda-provided:al2023 (docker.sh)
#   4. containers reach the host at the docker0 address (172.17.0.1): services listening only on 127.0.0.1
#      get a socat forwarder there (PostgreSQL, Redis, moto); a stand-in notification service and CloudFormation
#      ResponseURL listen there too (sam-local-smoke.py stub)
#   5. a fresh database SAM_LOCAL_DB (default event_planner_core_samlocal; SAM_LOCAL_KEEP_DB=1 keeps it) and
#      Redis database SAM_LOCAL_REDIS_DB (default 7, flushed): the development database and cache stay untouched
#   6. .local/sam-local/env.json: infra/env.local.json with these hosts, ports and names
# Every sam command gets: --skip-pull-image --invoke-image local/lambda-provided:al2023 --parameter-overrides
# "Architecture=x86_64 LocalDevelopment=true NotificationServiceUrl=..." --env-vars .local/sam-local/env.json
# --add-host host.docker.internal:<docker0 address> --region eu-west-1 (and AWS_* test credentials for moto).
#
# On exit it stops what it started: start-api (and its containers), the forwarders, the stand-in, its moto.
# The private dockerd keeps running (`infra/scripts/docker.sh stop` ends it). Logs, events and the outputs of
# every invocation: .local/sam-local/ (gitignored).
#
# Environment: SAM_LOCAL_BUILD=auto|always|never (default auto), SAM_LOCAL_PORT, SAM_LOCAL_DB, SAM_LOCAL_KEEP_DB,
# SAM_LOCAL_REDIS_DB, SAM_LOCAL_MOTO_PORT, SAM_LOCAL_WARM=LAZY|EAGER|off (start-api --warm-containers, default LAZY),
# DOCKER_DIR (docker.sh), PG_PORT/REDIS_PORT (services.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STATE="$ROOT/.local/sam-local"
mkdir -p "$STATE"
RESULTS="$STATE/results.tsv"
IMAGE=local/lambda-provided:al2023
PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
MOTO_PORT="${SAM_LOCAL_MOTO_PORT:-4577}"
DB="${SAM_LOCAL_DB:-event_planner_core_samlocal}"
REDIS_DB="${SAM_LOCAL_REDIS_DB:-7}"
MODE="${1:-smoke}"
[[ $# -gt 0 ]] && shift

say() { printf 'sam-local: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
case "$MODE" in
    smoke|start-api|invoke) ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) sed -n '2,52p' "$0" >&2; exit 2 ;;
esac
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "SAM_LOCAL_DB must be a plain lower-case identifier"

# One run at a time (they share the state directory, the database and the moto port).
exec 7>"$STATE/.lock"
flock -n 7 || die "another sam-local.sh run holds $STATE/.lock"

T0=$SECONDS
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
pids=()          # background processes this run started (killed on exit)
moto_started=0

print_table() {
    [[ -s "$RESULTS" ]] || return 0
    echo
    awk -F'\t' 'BEGIN { printf "%-22s %-62s %-8s %s\n", "FUNCTION", "HOW", "TIME", "RESULT";
                        printf "%-22s %-62s %-8s %s\n", "--------", "---", "----", "------" }
                { r = $3; if (length(r) > 150) r = substr(r, 1, 147) "...";
                  printf "%-22s %-62s %7.1fs %s\n", $1, substr($2, 1, 62), $4, r }' "$RESULTS"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # start-api (the smoke driver stops it itself; this is the backstop) and its warm containers.
    # SIGINT first: SAM stops its warm containers on KeyboardInterrupt; then TERM, then KILL.
    if [[ -f "$STATE/start-api.pid" ]]; then
        local p sig; p="$(cat "$STATE/start-api.pid")"
        for sig in INT TERM KILL; do
            kill -0 "$p" 2>/dev/null || break
            kill -"$sig" -- "-$p" 2>/dev/null || kill -"$sig" "$p" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        done
        rm -f "$STATE/start-api.pid"
    fi
    if [[ -n "${DOCKER_HOST:-}" ]]; then
        # Lambda containers SAM left behind (it removes them itself unless it was killed).
        docker ps -aq --filter label=sam.cli.container.type=lambda 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    fi
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ "$moto_started" == 1 ]]; then
        MOTO_PORT="$MOTO_PORT" infra/scripts/local-aws.sh stop || true
        for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ "$MODE" == smoke ]]; then
        record "(total)" "sam-local.sh smoke" "$([[ $rc == 0 ]] && echo PASS || echo "FAIL (exit $rc)")" "$((SECONDS - T0))"
        print_table
        echo
        say "total $((SECONDS - T0)) s; logs and events in ${STATE#"$ROOT"/}/; the private dockerd keeps running (infra/scripts/docker.sh stop)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step NAME HOW COMMAND...: runs a preparation step, records its time; a failure ends the run.
step() {
    local name="$1" how="$2" start=$SECONDS
    shift 2
    if "$@"; then
        record "$name" "$how" "PASS ${STEP_DETAIL:-}" "$((SECONDS - start))"
        STEP_DETAIL=""
    else
        record "$name" "$how" "FAIL ${STEP_DETAIL:-see the messages above}" "$((SECONDS - start))"
        die "$name failed"
    fi
}

# ----------------------------------------------------------------------------------------- 1. tools, build
# shellcheck source=tools.sh
source infra/scripts/tools.sh
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_CHECK_UPDATE=1
# moto accepts any credentials; SAM hands these (and the region) to the containers. No real account is used.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
unset AWS_PROFILE AWS_SESSION_TOKEN

mapfile -t FUNCTIONS < <(python3 - <<'PY'
from cfnlint.decode import decode
t, _ = decode("template.yaml")
for name, res in t["Resources"].items():
    if res.get("Type") == "AWS::Serverless::Function":
        print(name)
PY
)
(( ${#FUNCTIONS[@]} > 0 )) || die "no AWS::Serverless::Function in template.yaml"

source_hash() {
    git ls-files -co --exclude-standard -z -- Cargo.toml Cargo.lock template.yaml functions shared migrations \
        ':(exclude,glob)**/tests/**' ':(exclude,glob)**/benches/**' ':(exclude,glob)**/*.md' \
        | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum | cut -d' ' -f1
}
STAMP="$ROOT/.aws-sam/.sam-local-x86.stamp"
build_complete() {
    [[ -f .aws-sam/build/template.yaml ]] || return 1
    local fn
    for fn in "${FUNCTIONS[@]}"; do
        file -b ".aws-sam/build/$fn/bootstrap" 2>/dev/null | grep -q 'x86-64' || return 1
    done
}
build_up_to_date() {
    build_complete || return 1
    if [[ -f "$STAMP" ]]; then
        [[ "$(cat "$STAMP")" == "$WANT_HASH" ]]
        return
    fi
    # A build made without this script (no stamp): accepted when every bootstrap is newer than every source.
    local newest_src oldest_bin
    newest_src="$(git ls-files -co --exclude-standard -z -- Cargo.toml Cargo.lock template.yaml functions shared migrations \
        ':(exclude,glob)**/tests/**' ':(exclude,glob)**/benches/**' ':(exclude,glob)**/*.md' | xargs -0 stat -c %Y 2>/dev/null | sort -n | tail -n1)"
    oldest_bin="$(for fn in "${FUNCTIONS[@]}"; do stat -c %Y ".aws-sam/build/$fn/bootstrap"; done | sort -n | head -n1)"
    (( oldest_bin > newest_src ))
}
do_build() {
    WANT_HASH="$(source_hash)"
    local policy="${SAM_LOCAL_BUILD:-auto}"
    if [[ "$policy" == never ]]; then
        build_complete || { STEP_DETAIL="SAM_LOCAL_BUILD=never but .aws-sam has no complete x86_64 build"; return 1; }
        STEP_DETAIL="reused .aws-sam (SAM_LOCAL_BUILD=never; sources not compared)"; return 0
    fi
    if [[ "$policy" == auto ]] && build_up_to_date; then
        STEP_DETAIL="reused .aws-sam (x86_64 build of the same sources)"; return 0
    fi
    say "building every function for x86_64 (infra/scripts/build.sh --x86, nice ${SAM_LOCAL_NICE:-19}, CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}); log: ${STATE#"$ROOT"/}/build.log"
    rm -f "$STAMP"
    if ! nice -n "${SAM_LOCAL_NICE:-19}" env CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" infra/scripts/build.sh --x86 >"$STATE/build.log" 2>&1; then
        tail -n 30 "$STATE/build.log" >&2
        STEP_DETAIL="build.sh --x86 failed (${STATE#"$ROOT"/}/build.log)"; return 1
    fi
    build_complete || { STEP_DETAIL="a bootstrap is missing after the build"; return 1; }
    echo "$WANT_HASH" >"$STAMP"   # the sources as they were when the build started
    STEP_DETAIL="built ($(grep -o 'took [0-9]*s' "$STATE/build.log" | tail -n1))"
}
step "(sam build)" "infra/scripts/build.sh --x86 (nice, CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1})" do_build

# ----------------------------------------------------------------------------------------- 2. services
do_services() {
    infra/scripts/services.sh || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null; then
        # Ours from an interrupted run (or someone's on this port): reuse, start empty.
        MOTO_PORT="$MOTO_PORT" infra/scripts/local-aws.sh start >/dev/null || return 1
        "$ROOT/.venv/bin/python" - "$MOTO_PORT" <<'PY' || return 1
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}")
for name in ("email", "ticket-generation", "webhooks", "email-dlq", "ticket-generation-dlq", "webhooks-dlq"):
    sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=f"event-planner-core-local-{name}")["QueueUrl"])
PY
        STEP_DETAIL="PostgreSQL :$PG_PORT, Redis :$REDIS_PORT, moto :$MOTO_PORT (already running; queues purged)"
    else
        MOTO_PORT="$MOTO_PORT" infra/scripts/local-aws.sh start >/dev/null || return 1
        moto_started=1
        STEP_DETAIL="PostgreSQL :$PG_PORT, Redis :$REDIS_PORT, moto :$MOTO_PORT (started) with the 6 queues"
    fi
}
step "(services)" "services.sh + local-aws.sh start (MOTO_PORT=$MOTO_PORT)" do_services

# ----------------------------------------------------------------------------------------- 3. docker
do_docker() {
    local line
    line="$(infra/scripts/docker.sh env)" || return 1
    eval "$line"
    export DOCKER_HOST
    STEP_DETAIL="dockerd $(docker version --format '{{.Server.Version}}'), $IMAGE $(docker image inspect --format '{{.Id}}' "$IMAGE" | cut -c8-19)"
}
step "(docker)" "docker.sh: private dockerd + local base image" do_docker

# ----------------------------------------------------------------------------------------- 4. host from containers
HOST_IP="$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)"
[[ -n "$HOST_IP" ]] || HOST_IP="$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}')"
[[ -n "$HOST_IP" ]] || die "cannot tell the docker0 address"

free_port() { # free_port ADDRESS
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1]); s.close()' "$1"
}
do_forward() {
    if ! command -v socat >/dev/null 2>&1; then
        say "installing socat (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends socat; } >/dev/null || return 1
    fi
    local port forwarded=() direct=()
    for port in "$PG_PORT" "$REDIS_PORT" "$MOTO_PORT"; do
        if (exec 3<>"/dev/tcp/$HOST_IP/$port") 2>/dev/null; then
            direct+=("$port"); continue   # already listening there (or on 0.0.0.0)
        fi
        socat "TCP-LISTEN:$port,bind=$HOST_IP,reuseaddr,fork" "TCP:127.0.0.1:$port" </dev/null >>"$STATE/socat.log" 2>&1 &
        pids+=("$!")
        forwarded+=("$port")
    done
    for port in "${forwarded[@]}"; do
        for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/$HOST_IP/$port") 2>/dev/null && break; sleep 0.1; done
        (exec 3<>"/dev/tcp/$HOST_IP/$port") 2>/dev/null || { STEP_DETAIL="forwarder $HOST_IP:$port does not answer"; return 1; }
    done
    STUB_PORT="$(free_port "$HOST_IP")"
    STUB_URL="http://$HOST_IP:$STUB_PORT"
    rm -rf "$STATE/stub"; mkdir -p "$STATE/stub"
    "$ROOT/.venv/bin/python" infra/scripts/sam-local-smoke.py stub --host "$HOST_IP" --port "$STUB_PORT" --dir "$STATE/stub" \
        </dev/null >>"$STATE/stub.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/$HOST_IP/$STUB_PORT") 2>/dev/null && break; sleep 0.1; done
    (exec 3<>"/dev/tcp/$HOST_IP/$STUB_PORT") 2>/dev/null || { STEP_DETAIL="the stand-in did not start"; return 1; }
    # A container must really get through (bridge, forwarders): one throw-away busybox container checks all ports.
    local probe
    probe="$(docker run --rm --entrypoint /bin/sh "$IMAGE" -c "for p in $PG_PORT $REDIS_PORT $MOTO_PORT $STUB_PORT; do
        if echo | nc -w 3 $HOST_IP \$p >/dev/null 2>&1; then echo \"\$p:ok\"; else echo \"\$p:FAIL\"; fi; done" 2>&1)" || true
    if [[ "$probe" == *FAIL* || "$probe" != *ok* ]]; then STEP_DETAIL="from a container: ${probe//$'\n'/ }"; return 1; fi
    STEP_DETAIL="host $HOST_IP; socat for ${forwarded[*]:-none}${direct:+, direct ${direct[*]}}; stand-in :$STUB_PORT; from a container: ${probe//$'\n'/ }"
}
step "(network)" "socat forwarders + notification/ResponseURL stand-in" do_forward

# ----------------------------------------------------------------------------------------- 5-6. database, env file
PSQL=(psql -w -h 127.0.0.1 -p "$PG_PORT" -U postgres)
do_database() {
    if [[ "${SAM_LOCAL_KEEP_DB:-0}" != 1 ]]; then
        "${PSQL[@]}" -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || return 1
    fi
    if [[ -z "$("${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
        "${PSQL[@]}" -d postgres -qc "CREATE DATABASE $DB" >/dev/null || return 1
        STEP_DETAIL="database $DB created empty"
    else
        STEP_DETAIL="database $DB kept"
    fi
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$REDIS_DB" flushdb >/dev/null || return 1
    STEP_DETAIL+=", Redis db $REDIS_DB flushed"
    python3 - infra/env.local.json "$STATE/env.json" <<PY || return 1
import json, sys
doc = json.load(open(sys.argv[1]))
p = doc["Parameters"]
for k, v in p.items():
    if isinstance(v, str):
        p[k] = v.replace("host.docker.internal", "$HOST_IP")
p["DATABASE_URL"] = "postgres://postgres@$HOST_IP:$PG_PORT/$DB"
p["REDIS_URL"] = "redis://$HOST_IP:$REDIS_PORT/$REDIS_DB"
p["AWS_ENDPOINT_URL"] = "http://$HOST_IP:$MOTO_PORT"
p["EMAIL_QUEUE_URL"] = "http://$HOST_IP:$MOTO_PORT/123456789012/event-planner-core-local-email"
p["TICKET_QUEUE_URL"] = "http://$HOST_IP:$MOTO_PORT/123456789012/event-planner-core-local-ticket-generation"
p["WEBHOOKS_QUEUE_URL"] = "http://$HOST_IP:$MOTO_PORT/123456789012/event-planner-core-local-webhooks"
p["NOTIFICATION_SERVICE_URL"] = "$STUB_URL"
json.dump(doc, open(sys.argv[2], "w"), indent=2)
PY
}
step "(database)" "fresh database + env.json from infra/env.local.json" do_database

PARAMS="Architecture=x86_64 LocalDevelopment=true Environment=dev NotificationServiceUrl=$STUB_URL"
SAM_ARGS=(--template .aws-sam/build/template.yaml --env-vars "$STATE/env.json" --parameter-overrides "$PARAMS"
          --skip-pull-image --invoke-image "$IMAGE" --region eu-west-1 --add-host "host.docker.internal:$HOST_IP")

dev_token() {
    python3 - "$STATE/env.json" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = json.load(open(sys.argv[1]))["Parameters"]["JWT_SECRET"]
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
h = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = enc(json.dumps({"sub": "org-1", "role": "organizer", "iat": now, "exp": now + 12 * 3600}).encode())
print(f"{h}.{c}.{enc(hmac.new(secret.encode(), f'{h}.{c}'.encode(), hashlib.sha256).digest())}")
PY
}

case "$MODE" in
    smoke)
        rc=0
        SMOKE_ROOT="$ROOT" SMOKE_STATE="$STATE" SMOKE_RESULTS="$RESULTS" SMOKE_TEMPLATE=.aws-sam/build/template.yaml \
        SMOKE_ENV_JSON="$STATE/env.json" SMOKE_PARAMS="$PARAMS" SMOKE_IMAGE="$IMAGE" SMOKE_HOST_IP="$HOST_IP" \
        SMOKE_API_PORT="${SAM_LOCAL_PORT:-$(free_port 127.0.0.1)}" SMOKE_STUB_URL="$STUB_URL" SMOKE_STUB_DIR="$STATE/stub" \
        SMOKE_PSQL="${PSQL[*]} -d $DB" SMOKE_MOTO_URL="http://127.0.0.1:$MOTO_PORT" \
        SMOKE_WARM="$([[ "${SAM_LOCAL_WARM:-LAZY}" == off ]] || echo "${SAM_LOCAL_WARM:-LAZY}")" \
            "$ROOT/.venv/bin/python" infra/scripts/sam-local-smoke.py smoke || rc=$?
        exit "$rc"
        ;;
    start-api)
        say "migrating $DB: sam local invoke MigrateFunction"
        sam local invoke MigrateFunction --event <(echo '{}') "${SAM_ARGS[@]}" || die "migrations failed"
        say "development token (organizer org-1, 12 h): $(dev_token)"
        say "sam local start-api on http://127.0.0.1:${SAM_LOCAL_PORT:-3000} (Ctrl-C stops it and everything this script started)"
        warm=()
        [[ "${SAM_LOCAL_WARM:-LAZY}" == off ]] || warm=(--warm-containers "${SAM_LOCAL_WARM:-LAZY}")
        # In the background, so that INT/TERM reach this script's trap at once; `set -m` gives it a process
        # group of its own and keeps SIGINT (a non-interactive shell's background jobs would ignore it).
        set -m
        # (The python wrapper restores SIGINT when this script itself was started with it ignored.)
        python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
            sam local start-api --port "${SAM_LOCAL_PORT:-3000}" "${SAM_ARGS[@]}" "${warm[@]}" &
        echo "$!" >"$STATE/start-api.pid"
        set +m
        wait "$!"
        ;;
    invoke)
        fn="${1:?usage: sam-local.sh invoke FUNCTION [EVENT.json]}"
        event="${2:-}"
        if [[ -z "$event" ]]; then event="$STATE/empty-event.json"; echo '{}' >"$event"; fi
        if [[ "$fn" != MigrateFunction ]]; then
            sam local invoke MigrateFunction --event <(echo '{}') "${SAM_ARGS[@]}" >/dev/null 2>&1 || die "migrations failed"
        fi
        sam local invoke "$fn" --event "$event" "${SAM_ARGS[@]}"
        ;;
esac
