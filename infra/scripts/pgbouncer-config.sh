#!/usr/bin/env bash
# Writes a pgbouncer.ini for local tests: a transaction pooler in front of a PostgreSQL, like RDS
# Proxy in front of RDS (protocol-level prepared statements carried across server connections).
#
#   infra/scripts/pgbouncer-config.sh PORT LISTEN_ADDR UPSTREAM_HOST UPSTREAM_PORT DIR
#       e.g. infra/scripts/pgbouncer-config.sh 6432 127.0.0.1 127.0.0.1 5432 /tmp/pgb
#
# Creates DIR if needed and writes DIR/pgbouncer.ini and DIR/userlist.txt; prints the ini's path on
# stdout. Then, with the binary that infra/scripts/pgbouncer.sh prints (as a non-root user: pgbouncer
# refuses to run as root; e.g. `runuser -u postgres --`, and DIR must be writable by that user):
#
#   "$(infra/scripts/pgbouncer.sh)" -d DIR/pgbouncer.ini      # starts in the background
#   psql -h 127.0.0.1 -p PORT -U postgres -d postgres         # any database name is passed through
#   kill "$(cat DIR/pgbouncer.pid)"                           # stops it (log: DIR/pgbouncer.log)
#
# Settings: pool_mode=transaction, max_prepared_statements=200, auth_type=trust (users listed in
# DIR/userlist.txt, no passwords: the upstream must trust them too), a `* = host=.. port=..`
# wildcard database, no unix socket, log and pid files in DIR, server_reset_query empty,
# ignore_startup_parameters=extra_float_digits,options.
#
# Environment:
#   PGB_USERS              space-separated users allowed to log in (default "postgres"); the first
#                          one is also admin of the `pgbouncer` console database (SHOW POOLS, ...)
#   PGB_DEFAULT_POOL_SIZE  server connections per user/database pair (default 20)
#   PGB_MAX_CLIENT_CONN    (default 500)
#   PGB_EXTRA              extra lines appended to the [pgbouncer] section (e.g. "log_connections = 0")
set -euo pipefail

usage() { sed -n '5,6p' "$0" >&2; exit 2; }
[[ $# -eq 5 ]] || usage
port="$1" listen="$2" up_host="$3" up_port="$4" dir="$5"
[[ "$port" =~ ^[0-9]+$ && "$up_port" =~ ^[0-9]+$ ]] || { echo "pgbouncer-config: ports must be numbers" >&2; usage; }
for v in "$listen" "$up_host" "$dir"; do
    # pgbouncer.ini has no quoting for these values
    [[ -n "$v" && "$v" != *[[:space:]\;\"\']* ]] || { echo "pgbouncer-config: empty value or one with spaces/quotes/semicolons: '$v'" >&2; exit 2; }
done

users="${PGB_USERS:-postgres}"
read -r -a user_list <<<"$users"
[[ ${#user_list[@]} -gt 0 ]] || { echo "pgbouncer-config: PGB_USERS is empty" >&2; exit 2; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# auth_type=trust still requires the user to be listed in auth_file (password not checked).
: >"$dir/userlist.txt"
for u in "${user_list[@]}"; do
    printf '"%s" ""\n' "$u" >>"$dir/userlist.txt"
done

cat >"$dir/pgbouncer.ini" <<EOF
; Written by infra/scripts/pgbouncer-config.sh: local tests only (trust auth, no TLS).
[databases]
* = host=$up_host port=$up_port

[pgbouncer]
listen_addr = $listen
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = ${user_list[0]}
pool_mode = transaction
max_prepared_statements = 200
default_pool_size = ${PGB_DEFAULT_POOL_SIZE:-20}
max_client_conn = ${PGB_MAX_CLIENT_CONN:-500}
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
${PGB_EXTRA:-}
EOF
echo "$dir/pgbouncer.ini"
