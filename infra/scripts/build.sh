#!/usr/bin/env bash
# `sam build` of every function of template.yaml: cargo-lambda (from the repo's .venv, with zig
# from the `ziglang` PyPI package it depends on) cross-compiles each workspace binary for Lambda's
# Amazon Linux 2023 and SAM puts it in .aws-sam/build/<Function>/bootstrap.
#
#   infra/scripts/build.sh            arm64 (aarch64-unknown-linux-gnu), as the template deploys
#   infra/scripts/build.sh --x86      x86_64 instead (fallback when arm64 cannot be built here);
#                                     deploy it with `sam deploy --parameter-overrides Architecture=x86_64 ...`
#   infra/scripts/build.sh -- ARGS    extra `sam build` arguments (e.g. a function's logical id:
#                                     only that one is built and checked)
#
# Then it checks that every function got a `bootstrap` of the right architecture and prints each
# binary's size and the build time. Needs the Rust target of the architecture: added with
# `rustup target add` when missing (a download from static.rust-lang.org).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

arch=arm64 target=aarch64-unknown-linux-gnu machine=aarch64
sam_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --x86|--x86_64) arch=x86_64 target=x86_64-unknown-linux-gnu machine=x86-64; shift ;;
        --) shift; sam_args+=("$@"); break ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'build.sh: %s\n' "$*" >&2; }

# shellcheck source=tools.sh
source infra/scripts/tools.sh # .venv/bin first on PATH: sam, cargo-lambda, python with ziglang
command -v cargo-lambda >/dev/null || { say "cargo-lambda missing from .venv"; exit 1; }
# cargo-lambda runs zig through `python3 -m ziglang` when no `zig` is on PATH.
zig_version="$(python3 -m ziglang version 2>/dev/null)" || { say "zig is missing: the ziglang package should come with cargo-lambda (pip install ziglang)"; exit 1; }
say "cargo-lambda $(cargo-lambda lambda --version | awk '{print $2}'), zig $zig_version (PyPI ziglang), sam $(sam --version | awk '{print $NF}')"

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    say "adding the Rust standard library for $target (rustup target add: downloads ~30 MB)"
    rustup target add "$target" || { say "rustup could not add $target (offline?); use --x86 on an x86_64 machine"; exit 1; }
fi

export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_CHECK_UPDATE=1
start=$(date +%s)
# Parallel builds would all wait on the one Cargo target dir; samconfig.toml sets parallel = false.
sam build "${sam_args[@]}" --parameter-overrides "Architecture=$arch"
elapsed=$(( $(date +%s) - start ))

# Every function with BuildMethod rust-cargolambda must now have its bootstrap.
mapfile -t functions < <(python3 - <<'PY'
from cfnlint.decode import decode
template, _ = decode("template.yaml")
for name, res in template["Resources"].items():
    if res.get("Type") == "AWS::Serverless::Function" and res.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda":
        print(name)
PY
)
# `build.sh -- SomeFunction` builds only the functions named: check only those.
named=()
for fn in "${functions[@]}"; do
    for a in "${sam_args[@]}"; do [[ "$a" == "$fn" ]] && named+=("$fn"); done
done
(( ${#named[@]} > 0 )) && functions=("${named[@]}")
status=0
printf '\n%-22s %-16s %10s  %s\n' FUNCTION BINARY SIZE ARCHITECTURE
for fn in "${functions[@]}"; do
    bin="$(python3 -c "from cfnlint.decode import decode; t,_=decode('template.yaml'); print(t['Resources']['$fn']['Metadata']['BuildProperties']['Binary'])")"
    f=".aws-sam/build/$fn/bootstrap"
    if [[ ! -f "$f" ]]; then
        printf '%-22s %-16s %10s  %s\n' "$fn" "$bin" "-" "MISSING"; status=1; continue
    fi
    kind="$(file -b "$f")"
    if [[ "$kind" != *"$machine"* ]]; then status=1; fi
    printf '%-22s %-16s %10s  %s\n' "$fn" "$bin" "$(du -h "$f" | cut -f1)" "$(cut -d, -f1-2 <<<"$kind")"
done
say "sam build for $arch took ${elapsed}s"
(( status == 0 )) || { say "some bootstrap is missing or of the wrong architecture"; exit 1; }
