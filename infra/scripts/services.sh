#!/usr/bin/env bash
# Makes sure the local services the tests and the local server need are up:
#   PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and Redis on 127.0.0.1:6379.
# Idempotent; prints nothing and takes a few tens of ms when both already answer.
# A service that does not answer is started; one that is not installed is installed from Debian's
# packages first (apt-get; PostgreSQL gets trust auth on local connections, as on the dev machines).
#
#   infra/scripts/services.sh          # or: source infra/scripts/services.sh
#
# Environment:
#   SERVICES_TIMEOUT   seconds to wait for each service to answer after a start (default 30)
#   PG_PORT            PostgreSQL port (default 5432); the Debian cluster listening on it is started
#   REDIS_PORT         Redis port (default 6379)
#   SERVICES_SKIP      space-separated services to leave alone: "postgres", "redis"

_services_main() {
    local host=127.0.0.1
    local pg_port="${PG_PORT:-5432}" redis_port="${REDIS_PORT:-6379}"
    local timeout="${SERVICES_TIMEOUT:-30}"
    local skip=" ${SERVICES_SKIP:-} "
    local sudo=""
    if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi

    _say() { echo "services: $*" >&2; }
    _fail() { echo "services: ERROR: $*" >&2; return 1; }

    _apt_updated=0
    _apt_install() {
        if ! command -v apt-get >/dev/null 2>&1; then
            _fail "apt-get not available: install $* by hand"; return 1
        fi
        _say "installing $* with apt-get (first time on this machine)..."
        if [[ "$_apt_updated" == 0 ]]; then
            $sudo apt-get update -qq >/dev/null || { _fail "apt-get update failed"; return 1; }
            _apt_updated=1
        fi
        # --no-upgrade: never touch an installed (possibly running) package.
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --no-upgrade "$@" >/dev/null \
            || { _fail "apt-get install $* failed"; return 1; }
    }

    # ---------------------------------------------------------------- PostgreSQL
    _pg_ready() {
        if command -v pg_isready >/dev/null 2>&1; then
            pg_isready -q -h "$host" -p "$pg_port" -t 2
        else
            (exec 3<>"/dev/tcp/$host/$pg_port") 2>/dev/null
        fi
    }

    # "VERSION CLUSTER" of the Debian cluster configured for $pg_port (empty when none).
    _pg_cluster() {
        command -v pg_lsclusters >/dev/null 2>&1 || return 0
        pg_lsclusters -h 2>/dev/null | awk -v p="$pg_port" '$3 == p { print $1, $2; exit }'
    }

    # Trust auth on local connections, like the dev machines (only for clusters this script made).
    _pg_trust() {
        local ver="$1" name="$2" hba="/etc/postgresql/$1/$2/pg_hba.conf"
        [[ -f "$hba" ]] || return 0
        printf '%s\n' \
            "# Written by infra/scripts/services.sh: local development and CI only." \
            "local   all   all                 trust" \
            "host    all   all   127.0.0.1/32  trust" \
            "host    all   all   ::1/128       trust" | $sudo tee "$hba" >/dev/null
        $sudo pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >/dev/null 2>&1 || true
    }

    _ensure_postgres() {
        _pg_ready && return 0

        local created=0 cluster ver name
        if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]]; then
            _apt_install postgresql postgresql-client || return 1
            created=1 # Debian's postinst creates <version>/main on the first free port (5432)
        fi
        cluster="$(_pg_cluster)"
        if [[ -z "$cluster" ]]; then
            # Installed, but no cluster is configured for this port: make one.
            ver="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
            [[ -n "$ver" ]] || { _fail "no PostgreSQL server version under /usr/lib/postgresql"; return 1; }
            name=main
            if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
                name="port$pg_port" # 'main' exists, on another port
            fi
            if [[ -e "/etc/postgresql/$ver/$name" ]]; then
                _fail "/etc/postgresql/$ver/$name exists but is no usable cluster (pg_lsclusters does not list it on port $pg_port): fix or remove it"
                return 1
            fi
            _say "creating PostgreSQL cluster $ver/$name on port $pg_port..."
            $sudo pg_createcluster -p "$pg_port" "$ver" "$name" >/dev/null || { _fail "pg_createcluster failed"; return 1; }
            cluster="$ver $name"
            created=1
        fi
        ver="${cluster% *}"; name="${cluster#* }"
        [[ "$created" == 1 ]] && _pg_trust "$ver" "$name"

        _say "starting PostgreSQL $ver/$name on $host:$pg_port..."
        # A stale postmaster.pid from a killed server is handled by pg_ctl itself.
        $sudo pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >/dev/null 2>&1 || true

        local deadline=$((SECONDS + timeout))
        until _pg_ready; do
            if (( SECONDS >= deadline )); then
                _fail "PostgreSQL did not accept connections on $host:$pg_port within ${timeout}s"
                local log="/var/log/postgresql/postgresql-$ver-$name.log"
                [[ -r "$log" ]] && { echo "--- last lines of $log:" >&2; tail -n 20 "$log" >&2; }
                return 1
            fi
            sleep 0.2
        done
        _say "PostgreSQL ready on $host:$pg_port"
    }

    _check_postgres_auth() {
        command -v psql >/dev/null 2>&1 || return 0
        if ! psql -w -h "$host" -p "$pg_port" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
            _fail "PostgreSQL on $host:$pg_port answers but refuses user postgres without a password (expected trust auth; see pg_hba.conf)"
            return 1
        fi
    }

    # ---------------------------------------------------------------- Redis
    _redis_ready() {
        if command -v redis-cli >/dev/null 2>&1; then
            [[ "$(redis-cli -h "$host" -p "$redis_port" ping 2>/dev/null)" == PONG ]]
        else
            (
                exec 3<>"/dev/tcp/$host/$redis_port" || exit 1
                printf 'PING\r\n' >&3
                IFS= read -r -t 2 line <&3 && [[ "$line" == "+PONG"* ]]
            ) 2>/dev/null
        fi
    }

    _ensure_redis() {
        _redis_ready && return 0
        if ! command -v redis-server >/dev/null 2>&1; then
            _apt_install redis-server || return 1
        fi
        _say "starting Redis on $host:$redis_port..."
        redis-server --daemonize yes --bind "$host" --port "$redis_port" --save "" --appendonly no >/dev/null \
            || { _fail "redis-server failed to start"; return 1; }
        local deadline=$((SECONDS + timeout))
        until _redis_ready; do
            if (( SECONDS >= deadline )); then
                _fail "Redis did not answer PING on $host:$redis_port within ${timeout}s"
                return 1
            fi
            sleep 0.1
        done
        _say "Redis ready on $host:$redis_port"
    }

    local rc=0
    if [[ "$skip" != *" postgres "* ]]; then
        _ensure_postgres && _check_postgres_auth || rc=1
    fi
    if [[ "$skip" != *" redis "* ]]; then
        _ensure_redis || rc=1
    fi
    unset -f _say _fail _apt_install _pg_ready _pg_cluster _pg_trust _ensure_postgres _check_postgres_auth _redis_ready _ensure_redis
    unset _apt_updated
    return "$rc"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: run in a subshell so the caller's shell options and functions stay untouched.
    if ( _services_main ); then
        unset -f _services_main
        return 0
    else
        unset -f _services_main
        return 1
    fi
else
    set -uo pipefail
    _services_main
    exit $?
fi
