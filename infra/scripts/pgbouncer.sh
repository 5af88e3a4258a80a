#!/usr/bin/env bash
# Makes sure a PgBouncer >= 1.21 is available (transaction pooling with max_prepared_statements,
# which tokio-postgres' named prepared statements need) and prints the absolute path of its binary
# on stdout; everything else goes to stderr. Idempotent.
#
#   infra/scripts/pgbouncer.sh           # print the binary's path (build it first if needed)
#   infra/scripts/pgbouncer.sh --check   # same, then a smoke test: a throwaway pgbouncer on a free
#                                        # port in front of 127.0.0.1:5432 (psql `select 1`, and
#                                        # pgbench -M prepared through 2 server connections), stopped after
#
# Where the binary comes from, first match wins (a few ms when one is there):
#   1. `pgbouncer` on PATH (or /usr/sbin/pgbouncer) when its --version is >= 1.21;
#   2. the cache $PGB_CACHE_ROOT/pgbouncer-X.Y/bin/pgbouncer (default root /usr/local/lib/ept, outside
#      the work tree, so every later run and every checkout reuses it), highest version >= 1.21;
#   3. otherwise it is built (~1 min on 2 cores; needs root or passwordless sudo): Debian bookworm's
#      package is 1.18, too old, so the source package of Debian trixie is fetched with
#      `apt-get source` through a private apt configuration (a deb-src line for trixie on the same
#      mirror as the system's bookworm line; the system's apt sources are not touched), the build
#      dependencies are installed with apt-get, then configure / make, and the binary is installed
#      into the cache above.
#
# To run one for tests, write its configuration with infra/scripts/pgbouncer-config.sh (see there).
# pgbouncer refuses to run as root: as root, start it with `runuser -u postgres -- BIN -d INI`.
#
# Environment:
#   PGB_CACHE_ROOT      cache root (default /usr/local/lib/ept)
#   PGB_SUITE           Debian suite whose source package is built (default trixie)
#   PGB_DEBIAN_MIRROR   Debian mirror URI (default: the one the system's apt sources use for this
#                       release, read from /etc/apt/sources.list{,.d/*})
#   PGB_RUN_USER        user the --check pooler runs as when this script runs as root (default postgres)
#   PGB_UPSTREAM        host:port of the PostgreSQL for --check (default 127.0.0.1:5432, trust auth)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIN_VERSION=1.21
CACHE_ROOT="${PGB_CACHE_ROOT:-/usr/local/lib/ept}"
SUITE="${PGB_SUITE:-trixie}"

say() { printf 'pgbouncer.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    -h|--help) sed -n '2,31p' "$0" >&2; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
esac

sudo=""
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
fi

# version_of BIN: "1.24.1" (the first version number --version prints), or fails.
version_of() {
    local out
    out="$("$1" --version 2>/dev/null | head -n 1)" || return 1
    grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' <<<"$out" | head -n 1 | grep . # fails when none
}

# new_enough VERSION: VERSION >= MIN_VERSION.
new_enough() {
    [[ "$(printf '%s\n%s\n' "$MIN_VERSION" "$1" | sort -V | head -n 1)" == "$MIN_VERSION" ]]
}

# find_binary: prints the path of a usable pgbouncer >= MIN_VERSION, or fails.
find_binary() {
    local candidates=() c v best="" best_v=""
    c="$(command -v pgbouncer 2>/dev/null)" && candidates+=("$c")
    [[ -x /usr/sbin/pgbouncer ]] && candidates+=(/usr/sbin/pgbouncer)
    for c in "${candidates[@]}"; do
        if v="$(version_of "$c")" && new_enough "$v"; then
            (cd "$(dirname "$c")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$c")")
            return 0
        fi
    done
    shopt -s nullglob
    for c in "$CACHE_ROOT"/pgbouncer-*/bin/pgbouncer; do
        [[ -x "$c" ]] || continue
        v="$(version_of "$c")" || continue # e.g. a shared library went missing: rebuilt below
        new_enough "$v" || continue
        if [[ -z "$best_v" || "$(printf '%s\n%s\n' "$best_v" "$v" | sort -V | tail -n 1)" == "$v" ]]; then
            best="$c" best_v="$v"
        fi
    done
    shopt -u nullglob
    [[ -n "$best" ]] && printf '%s\n' "$best"
}

# debian_mirror: the URI of the system's Debian archive (the apt source serving this release).
debian_mirror() {
    if [[ -n "${PGB_DEBIAN_MIRROR:-}" ]]; then echo "${PGB_DEBIAN_MIRROR%/}"; return 0; fi
    local codename f uri=""
    codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"' | head -n 1)"
    [[ -n "$codename" ]] || return 1
    shopt -s nullglob
    # deb822 stanzas (*.sources): a stanza whose Suites holds exactly the codename.
    for f in /etc/apt/sources.list.d/*.sources; do
        uri="$(awk -v want="$codename" '
            function flush() { if (ok && u != "" && en) { print u; found = 1; exit } ok = 0; u = ""; en = 1 }
            BEGIN { en = 1 }
            /^[[:space:]]*$/ { flush(); next }
            /^[[:space:]]*#/ { next }
            tolower($1) == "uris:"    { u = $2 }
            tolower($1) == "suites:"  { for (i = 2; i <= NF; i++) if ($i == want) ok = 1 }
            tolower($1) == "enabled:" { en = (tolower($2) != "no") }
            END { if (!found) flush() }' "$f")"
        [[ -n "$uri" ]] && break
    done
    # One-line format: deb [options] URI SUITE COMPONENTS...
    if [[ -z "$uri" ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -r "$f" ]] || continue
            uri="$(sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$codename" '$1 ~ /^deb(-src)?$/ && $3 == want { print $2; exit }')"
            [[ -n "$uri" ]] && break
        done
    fi
    shopt -u nullglob
    [[ -n "$uri" ]] && echo "${uri%/}"
}

apt_install() {
    say "installing build dependencies with apt-get: $*"
    local opts=(-o DPkg::Lock::Timeout=600 -qq)
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get "${opts[@]}" install -y --no-install-recommends --no-upgrade "$@" >/dev/null; then
        say "apt-get install failed; updating the package lists and retrying"
        $sudo apt-get "${opts[@]}" update >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get "${opts[@]}" install -y --no-install-recommends --no-upgrade "$@" >/dev/null \
            || die "apt-get install $* failed"
    fi
}

build() {
    [[ "$(id -u)" == 0 || -n "$sudo" ]] || die "building pgbouncer needs root (or passwordless sudo): run this script once as root"
    local start=$SECONDS mirror work v majmin dest stage
    mirror="$(debian_mirror)" || die "cannot tell the Debian mirror from /etc/apt/sources.list*: set PGB_DEBIAN_MIRROR"
    [[ -n "$mirror" ]] || die "no apt source for this Debian release found: set PGB_DEBIAN_MIRROR"
    apt_install build-essential pkg-config dpkg-dev xz-utils libevent-dev libc-ares-dev libssl-dev

    work="$(mktemp -d /tmp/pgbouncer-build.XXXXXX)"
    # shellcheck disable=SC2064 # expand $work now
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/parts" "$work/src"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -r "$keyring" ]] || die "$keyring missing (package debian-archive-keyring)"
    echo "deb-src [signed-by=$keyring] $mirror $SUITE main" >"$work/apt/sources.list"
    # A private apt state: only this deb-src line, own lists and caches, so the system's apt
    # configuration, lists and locks stay untouched.
    local apt=(apt-get -qq -o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/parts"
        -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
    say "fetching the pgbouncer source package of Debian $SUITE (deb-src $mirror $SUITE main)"
    "${apt[@]}" update >&2 || die "apt-get update of the $SUITE deb-src line failed"
    (cd "$work/src" && "${apt[@]}" source pgbouncer >&2) || die "apt-get source pgbouncer failed"
    local srcdir
    srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'pgbouncer-*' | head -n 1)"
    [[ -n "$srcdir" && -x "$srcdir/configure" ]] || die "no unpacked pgbouncer source with a configure script in $work/src"
    say "building $(basename "$srcdir") (configure, make -j$(nproc))"
    (
        cd "$srcdir"
        ./configure --prefix=/usr/local --with-cares --without-systemd >"$work/configure.log" 2>&1 \
            || { tail -n 30 "$work/configure.log" >&2; exit 1; }
        make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
    ) || die "building pgbouncer failed"
    v="$(version_of "$srcdir/pgbouncer")" || die "the built pgbouncer does not run"
    new_enough "$v" || die "$SUITE's pgbouncer is $v, older than $MIN_VERSION"
    majmin="$(cut -d. -f1,2 <<<"$v")"
    dest="$CACHE_ROOT/pgbouncer-$majmin"
    $sudo mkdir -p "$CACHE_ROOT"
    stage="$(mktemp -d "$CACHE_ROOT/.pgbouncer-stage.XXXXXX")" 2>/dev/null || stage="$($sudo mktemp -d "$CACHE_ROOT/.pgbouncer-stage.XXXXXX")"
    $sudo install -d -m 0755 "$stage/bin"
    $sudo install -m 0755 "$srcdir/pgbouncer" "$stage/bin/pgbouncer"
    printf 'pgbouncer %s, built %s by infra/scripts/pgbouncer.sh from the Debian %s source package (%s)\n' \
        "$v" "$(date -u +%FT%TZ)" "$SUITE" "$(basename "$(ls "$work"/src/*.dsc)")" | $sudo tee "$stage/SOURCE" >/dev/null
    $sudo chmod 0755 "$stage"
    $sudo rm -rf "$dest"
    $sudo mv -T "$stage" "$dest"
    rm -rf "$work"
    trap - EXIT
    say "installed pgbouncer $v into $dest/bin/pgbouncer (build took $((SECONDS - start)) s)"
}

ensure() {
    local bin
    if bin="$(find_binary)"; then echo "$bin"; return 0; fi
    # One build at a time (two test runs starting together): wait for the lock, then look again.
    $sudo mkdir -p "$CACHE_ROOT"
    { exec 9>>"$CACHE_ROOT/.pgbouncer.lock"; } 2>/dev/null || exec 9>>"/tmp/.ept-pgbouncer.lock"
    flock 9
    if ! bin="$(find_binary)"; then
        say "no pgbouncer >= $MIN_VERSION found (on PATH or in $CACHE_ROOT): building one"
        build
        bin="$(find_binary)" || die "pgbouncer still not found after the build"
    fi
    flock -u 9
    echo "$bin"
}

# smoke_test BIN: a throwaway pooler in transaction mode in front of PGB_UPSTREAM.
smoke_test() {
    local bin="$1" upstream="${PGB_UPSTREAM:-127.0.0.1:5432}" port="" p dir run=() out
    command -v psql >/dev/null 2>&1 || die "--check needs psql (package postgresql-client)"
    for p in $(shuf -i 20000-40000 -n 50); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port="$p"; break; fi
    done
    [[ -n "$port" ]] || die "no free port found"
    dir="$(mktemp -d /tmp/pgbouncer-check.XXXXXX)"
    chmod 0755 "$dir"
    if [[ "$(id -u)" == 0 ]]; then
        local user="${PGB_RUN_USER:-postgres}"
        id "$user" >/dev/null 2>&1 || die "user $user does not exist (set PGB_RUN_USER to a non-root user)"
        chown "$user" "$dir"
        run=(runuser -u "$user" --)
    fi
    PGB_DEFAULT_POOL_SIZE=2 "${run[@]}" "$SCRIPT_DIR/pgbouncer-config.sh" "$port" 127.0.0.1 "${upstream%:*}" "${upstream##*:}" "$dir" >/dev/null
    # shellcheck disable=SC2064 # expand now
    trap "[[ -s '$dir/pgbouncer.pid' ]] && kill \$(cat '$dir/pgbouncer.pid') 2>/dev/null; sleep 0.3; rm -rf '$dir'" EXIT
    say "check: starting $bin on 127.0.0.1:$port (transaction pooling, max_prepared_statements=200, 2 server connections) in front of $upstream"
    "${run[@]}" "$bin" -d "$dir/pgbouncer.ini" || { cat "$dir/pgbouncer.log" >&2 2>/dev/null; die "pgbouncer did not start"; }
    local deadline=$((SECONDS + 15))
    until out="$(psql -w -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc 'select 1' 2>&1)" && [[ "$out" == 1 ]]; do
        if (( SECONDS >= deadline )); then
            say "psql through pgbouncer: $out"
            tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null || true
            die "check failed: select 1 through pgbouncer on port $port"
        fi
        sleep 0.2
    done
    say "check: psql -h 127.0.0.1 -p $port -U postgres -d postgres -c 'select 1' -> $out"
    local pgbench
    pgbench="$(command -v pgbench 2>/dev/null)" || pgbench=""
    if [[ -z "$pgbench" ]]; then
        for p in /usr/lib/postgresql/*/bin/pgbench; do [[ -x "$p" ]] && pgbench="$p"; done
    fi
    if [[ -n "$pgbench" ]]; then
        # Named prepared statements (extended protocol, like tokio-postgres) from 8 clients over 2
        # server connections: fails with 'prepared statement ... does not exist' before 1.21.
        printf '%s\n' '\set a random(1, 1000)' 'select :a::int + 1;' >"$dir/bench.sql"
        # pgbench can exit 0 after clients aborted: the processed count must be complete too.
        if ! out="$("$pgbench" -n -M prepared -c 8 -j 2 -t 100 -f "$dir/bench.sql" -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1)" \
            || ! grep -q 'actually processed: 800/800' <<<"$out" || grep -q '^pgbench: error' <<<"$out"; then
            printf '%s\n' "$out" | tail -n 10 >&2
            die "check failed: pgbench -M prepared through pgbouncer"
        fi
        say "check: pgbench -M prepared, 8 clients x 100 transactions over 2 server connections: $(grep -E 'processed|failed' <<<"$out" | tr -s ' \n' ' ')"
    else
        say "check: pgbench not found, prepared-statement check skipped"
    fi
    kill "$(cat "$dir/pgbouncer.pid")"
    deadline=$((SECONDS + 10))
    while [[ -s "$dir/pgbouncer.pid" ]] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; do
        (( SECONDS < deadline )) || die "pgbouncer did not stop"
        sleep 0.1
    done
    rm -rf "$dir"
    trap - EXIT
    say "check: passed, pgbouncer stopped"
}

bin="$(ensure)"
[[ "$check" == 1 ]] && smoke_test "$bin"
echo "$bin"
