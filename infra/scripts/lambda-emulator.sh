#!/usr/bin/env bash
# Local AWS Lambda runtime emulator (cargo-lambda's `watch --only-lambda-apis`) for driving the
# already-built function binaries with real Lambda event payloads (API Gateway HTTP API v2, SQS...).
# cargo-lambda compiles nothing in this mode: build first with `cargo build` (workspace target/).
#
#   lambda-emulator.sh start  [PORT]                start the emulator in the background (default 9000)
#   lambda-emulator.sh stop   [PORT]                stop it and every binary attached to it
#   lambda-emulator.sh status [PORT]                exit 0 when it is up
#   lambda-emulator.sh env    NAME [PORT]           print the env a binary needs to serve function NAME
#   lambda-emulator.sh attach NAME [PORT] [-- ARGS] run target/debug/NAME against the emulator (background)
#   lambda-emulator.sh detach NAME [PORT]           stop that binary
#   lambda-emulator.sh invoke NAME EVENT.json [PORT]  send one event, print the function's raw response
#                                                   (exit 0 on HTTP 200; 1 on a function error/timeout)
#
# Function names are the workspace's binary names (`events`, `health`, ...): the emulator refuses
# (404 "Missing function") any name that is not a [[bin]] of the Cargo manifest it was started with,
# and reads that list once at start (restart it after adding a binary). `_` is always accepted.
#
# Endpoints (PORT on 127.0.0.1 only; the emulator's default is [::] and cargo lambda invoke's is [::1]):
#   POST http://127.0.0.1:PORT/2015-03-31/functions/NAME/invocations   body = the event JSON;
#        200 + the handler's JSON output (for lambda_http: {"statusCode","headers","multiValueHeaders",
#        "body","isBase64Encoded","cookies"}), 500 + {"errorType","errorMessage"} when the handler
#        returns Err or panics, 408 (empty body) after --timeout when no binary answers,
#        404 + {"title":"Missing function",...} for an unknown NAME.
#   ANY  http://127.0.0.1:PORT/lambda-url/NAME/some/path?query   plain HTTP: wrapped into an API GW v2
#        event (routeKey $default, no pathParameters) and the function's response unwrapped into a
#        real HTTP response (status, headers, body). Handy with curl.
#   Runtime API for binaries: http://127.0.0.1:PORT/.rt/NAME  (AWS_LAMBDA_RUNTIME_API, scheme required)
#
# Environment:
#   LAMBDA_EMULATOR_TIMEOUT   seconds an invocation waits for a response before 408 (default 30)
#   LAMBDA_INVOKE_TIMEOUT     client-side limit of `invoke`, seconds (default LAMBDA_EMULATOR_TIMEOUT + 5)
#   LAMBDA_EMULATOR_MANIFEST  Cargo.toml whose binaries are the valid names (default: the workspace's)
#   LAMBDA_BIN_DIR            where `attach` finds binaries (default: ${CARGO_TARGET_DIR:-<repo>/target}/debug)
#   LAMBDA_MEMORY_MB          AWS_LAMBDA_FUNCTION_MEMORY_SIZE given to attached binaries (default 256)
#   Anything else in the environment (DATABASE_URL, JWT_SECRET, RUST_LOG...) is passed to `attach`ed
#   binaries unchanged.
#
# State (pid and log files) lives in <repo>/.local/lambda-emulator/ (gitignored).

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
STATE_DIR="$ROOT/.local/lambda-emulator"
VENV_BIN="${TOOLS_VENV:-$ROOT/.venv}/bin"
DEFAULT_PORT=9000
HOST=127.0.0.1

die() { echo "lambda-emulator: $*" >&2; exit 1; }
log() { echo "lambda-emulator: $*" >&2; }

is_port_number() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 > 0 && $1 < 65536 )); }
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
read_pid() { if [[ -f "$1" ]]; then cat "$1"; fi; }

emulator_pidfile() { echo "$STATE_DIR/emulator-$1.pid"; }
emulator_logfile() { echo "$STATE_DIR/emulator-$1.log"; }
fn_pidfile() { echo "$STATE_DIR/fn-$2-$1.pid"; }   # (name, port)
fn_logfile() { echo "$STATE_DIR/fn-$2-$1.log"; }

# Stop a process (and its process group when it leads one): TERM, wait up to 5 s, then KILL.
stop_pid() {
    local pid="$1" _
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        pid_alive "$pid" || return 0
        # A zombie left for our parent to reap counts as stopped.
        [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]] && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_start() {
    local port="${1:-$DEFAULT_PORT}" timeout="${LAMBDA_EMULATOR_TIMEOUT:-30}"
    local manifest="${LAMBDA_EMULATOR_MANIFEST:-$ROOT/Cargo.toml}"
    is_port_number "$port" || die "bad port: $port"
    mkdir -p "$STATE_DIR"
    local pidfile logfile pid
    pidfile="$(emulator_pidfile "$port")"
    logfile="$(emulator_logfile "$port")"

    pid="$(read_pid "$pidfile")"
    if pid_alive "$pid" && port_open "$port"; then
        return 0 # already running: idempotent
    fi
    rm -f "$pidfile"
    # cargo lambda watch exits 0 *silently* when its port is taken: check first.
    if port_open "$port"; then
        die "port $port on $HOST is already in use by another process"
    fi

    "$SCRIPT_DIR/tools.sh" # cargo-lambda lives in the venv
    [[ -x "$VENV_BIN/cargo-lambda" ]] || die "cargo-lambda not found in $VENV_BIN"
    command -v cargo >/dev/null || die "cargo not on PATH (the emulator runs \`cargo metadata\`)"

    local start_ns
    start_ns=$(date +%s%N)
    # Run the cargo-lambda binary directly (not through `cargo lambda`) so the pid is the server's;
    # setsid: own session, no tie to the caller's terminal or job control.
    setsid "$VENV_BIN/cargo-lambda" lambda watch \
        --only-lambda-apis \
        --manifest-path "$manifest" \
        --invoke-address "$HOST" --invoke-port "$port" \
        --timeout "$timeout" \
        </dev/null >"$logfile" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"

    # Ready = our pid is alive and the port accepts connections. (Do not probe with a GET on `/`:
    # that is a function-URL call of the default function `_` and blocks until --timeout.)
    local _
    for _ in $(seq 1 300); do # 30 s: `cargo metadata` of the workspace takes ~1 s, more on a cold cache
        if ! pid_alive "$pid"; then
            rm -f "$pidfile"
            cat "$logfile" >&2
            die "emulator exited during start (log above: $logfile)"
        fi
        if port_open "$port"; then
            log "emulator up on http://$HOST:$port in $(( ($(date +%s%N) - start_ns) / 1000000 )) ms (pid $pid, log $logfile)"
            return 0
        fi
        sleep 0.1
    done
    stop_pid "$pid"
    rm -f "$pidfile"
    cat "$logfile" >&2
    die "emulator did not listen on $HOST:$port within 30 s"
}

cmd_stop() {
    local port="${1:-$DEFAULT_PORT}" f pid
    is_port_number "$port" || die "bad port: $port"
    [[ -d "$STATE_DIR" ]] || return 0
    # Attached binaries first (they would exit with an error anyway once the emulator is gone).
    for f in "$STATE_DIR"/fn-"$port"-*.pid; do
        [[ -e "$f" ]] || continue
        stop_pid "$(read_pid "$f")"
        rm -f "$f"
    done
    f="$(emulator_pidfile "$port")"
    pid="$(read_pid "$f")"
    stop_pid "$pid"
    rm -f "$f"
}

cmd_status() {
    local port="${1:-$DEFAULT_PORT}" pid f name
    pid="$(read_pid "$(emulator_pidfile "$port")")"
    if pid_alive "$pid" && port_open "$port"; then
        echo "emulator: up on http://$HOST:$port (pid $pid)"
        for f in "$STATE_DIR"/fn-"$port"-*.pid; do
            [[ -e "$f" ]] || continue
            name="${f##*/fn-"$port"-}"; name="${name%.pid}"
            pid="$(read_pid "$f")"
            if pid_alive "$pid"; then echo "  $name: attached (pid $pid)"; else echo "  $name: dead (see $(fn_logfile "$name" "$port"))"; fi
        done
        return 0
    fi
    echo "emulator: down on port $port"
    return 1
}

# The variables lambda_runtime 1.x reads at start: missing FUNCTION_NAME / MEMORY_SIZE / VERSION
# make it panic; RUNTIME_API must carry the scheme because of the /.rt/NAME path.
fn_env() {
    local name="$1" port="$2"
    echo "AWS_LAMBDA_FUNCTION_NAME=$name"
    echo "AWS_LAMBDA_FUNCTION_VERSION=\$LATEST"
    echo "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=${LAMBDA_MEMORY_MB:-256}"
    echo "AWS_LAMBDA_RUNTIME_API=http://$HOST:$port/.rt/$name"
    echo "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/$name"
    echo "AWS_LAMBDA_LOG_STREAM_NAME=local"
    echo "AWS_REGION=${AWS_REGION:-eu-west-1}"
    # In Lambda the database connection defaults to verify-full TLS; a local PostgreSQL has none.
    echo "DB_SSLMODE=${DB_SSLMODE:-disable}"
}

cmd_env() {
    [[ $# -ge 1 ]] || die "usage: env NAME [PORT]"
    local name="$1" port="${2:-$DEFAULT_PORT}" line
    while IFS= read -r line; do printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"; done < <(fn_env "$name" "$port")
}

cmd_attach() {
    [[ $# -ge 1 ]] || die "usage: attach NAME [PORT] [-- ARGS]"
    local name="$1"; shift
    local port="$DEFAULT_PORT"
    if [[ $# -ge 1 && "$1" != "--" ]]; then port="$1"; shift; fi
    [[ "${1:-}" == "--" ]] && shift
    is_port_number "$port" || die "bad port: $port"
    port_open "$port" || die "no emulator on $HOST:$port (run: $0 start $port)"

    local bin_dir="${LAMBDA_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
    local bin="$bin_dir/$name"
    [[ -x "$bin" ]] || die "$bin not found: cargo build -p <package> --bin $name first (or set LAMBDA_BIN_DIR)"

    mkdir -p "$STATE_DIR"
    local pidfile logfile pid
    pidfile="$(fn_pidfile "$name" "$port")"
    logfile="$(fn_logfile "$name" "$port")"
    stop_pid "$(read_pid "$pidfile")"
    rm -f "$pidfile"

    local -a envs=()
    mapfile -t envs < <(fn_env "$name" "$port")
    env "${envs[@]}" setsid "$bin" "$@" </dev/null >"$logfile" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"

    # Ready = the binary holds a connection to the emulator (lambda_runtime long-polls
    # /runtime/invocation/next). A binary that fails its init exits instead: report its log,
    # because the emulator would otherwise let invocations hang until --timeout.
    local _
    for _ in $(seq 1 100); do # 10 s
        if ! pid_alive "$pid"; then
            rm -f "$pidfile"
            head -n 8 "$logfile" >&2
            die "$name exited during init (start of its log above; all of it: $logfile)"
        fi
        if ss -Htnp state established "( dport = :$port )" 2>/dev/null | grep -q "pid=$pid,"; then
            log "$name attached to http://$HOST:$port (pid $pid, log $logfile)"
            return 0
        fi
        sleep 0.1
    done
    log "$name (pid $pid) is running but not polling yet after 10 s; log: $logfile"
}

cmd_detach() {
    [[ $# -ge 1 ]] || die "usage: detach NAME [PORT]"
    local name="$1" port="${2:-$DEFAULT_PORT}" f
    f="$(fn_pidfile "$name" "$port")"
    stop_pid "$(read_pid "$f")"
    rm -f "$f"
}

cmd_invoke() {
    [[ $# -ge 2 ]] || die "usage: invoke NAME EVENT.json [PORT]"
    local name="$1" event="$2" port="${3:-$DEFAULT_PORT}"
    [[ -f "$event" ]] || die "no such event file: $event"
    local out code rc=0 max_time="${LAMBDA_INVOKE_TIMEOUT:-$(( ${LAMBDA_EMULATOR_TIMEOUT:-30} + 5 ))}"
    out="$(mktemp)"
    code="$(curl -sS -o "$out" -w '%{http_code}' --max-time "$max_time" \
        -X POST -H 'content-type: application/json' --data-binary "@$event" \
        "http://$HOST:$port/2015-03-31/functions/$name/invocations")" || rc=$?
    if (( rc != 0 )); then
        rm -f "$out"
        (( rc == 28 )) && die "no answer within $max_time s: is a binary attached for $name? ($0 status $port)"
        die "could not reach the emulator on $HOST:$port (curl exit $rc)"
    fi
    cat "$out"; echo
    rm -f "$out"
    case "$code" in
        200) return 0 ;;
        408) die "HTTP 408: no response within ${LAMBDA_EMULATOR_TIMEOUT:-30} s (binary attached? see $0 status $port)" ;;
        *) die "HTTP $code" ;;
    esac
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

sub="${1:-}"; [[ $# -gt 0 ]] && shift
case "$sub" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    attach) cmd_attach "$@" ;;
    detach) cmd_detach "$@" ;;
    invoke) cmd_invoke "$@" ;;
    -h|--help|help|"") usage ;;
    *) usage >&2; exit 2 ;;
esac
