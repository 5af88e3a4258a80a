#!/usr/bin/env bash
# Installs the developer / CI tools of infra/requirements-dev.txt (cargo-lambda, aws-sam-cli,
# cfn-lint, moto[server]) into <repo>/.venv.
#
#   infra/scripts/tools.sh            # make sure .venv is up to date (silent when it already is)
#   source infra/scripts/tools.sh     # same, then puts .venv/bin on PATH of the calling shell
#                                     # (so `cargo lambda ...`, `sam`, `cfn-lint`, `moto_server` work)
#
# Fast path (~25 ms, prints nothing): .venv/.requirements.sha256 holds the hash of
# requirements-dev.txt and matches, and .venv/bin/python runs. Otherwise the venv is created / updated
# (~1 min, ~850 MB) and the stamp rewritten. A failed install leaves no stamp, so the next run retries.
#
# Environment:
#   PYTHON         interpreter used to create the venv (default: python3)
#   TOOLS_VENV     venv directory (default: <repo>/.venv)
#   TOOLS_FORCE=1  reinstall even if the stamp matches

_tools_main() {
    local script_dir root req venv stamp python want log
    script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    root="$(cd "$script_dir/../.." && pwd)"
    req="$root/infra/requirements-dev.txt"
    venv="${TOOLS_VENV:-$root/.venv}"
    stamp="$venv/.requirements.sha256"
    python="${PYTHON:-python3}"

    want="$(sha256sum <"$req" | cut -d' ' -f1)"

    # Fast path: same requirements, and the venv's interpreter still runs (a venv whose base Python
    # was removed or replaced fails here and is rebuilt below).
    if [[ "${TOOLS_FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$venv/bin/python" -c '' >/dev/null 2>&1; then
        return 0
    fi

    if ! command -v "$python" >/dev/null 2>&1; then
        echo "tools.sh: $python not found" >&2
        return 1
    fi

    mkdir -p "$venv"
    # Serialise concurrent runs (e.g. two CI steps) on the same venv.
    exec 9>"$venv/.install.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
        # Someone else may have finished the install while we waited.
        if [[ "${TOOLS_FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
            && "$venv/bin/python" -c '' >/dev/null 2>&1; then
            exec 9>&-
            return 0
        fi
    fi

    echo "tools.sh: installing dev tools into $venv (first run or requirements changed, ~1 min)..." >&2
    local start=$SECONDS
    log="$(mktemp "${TMPDIR:-/tmp}/tools-install.XXXXXX.log")"
    rm -f "$stamp"

    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # A venv whose base interpreter vanished (new machine, other Python) is rebuilt from scratch.
        rm -rf "${venv:?}/bin" "${venv:?}/lib" "${venv:?}/lib64" "${venv:?}/include" "${venv:?}/pyvenv.cfg"
        if ! "$python" -m venv "$venv" >>"$log" 2>&1; then
            # Debian's system python needs python3-venv for ensurepip.
            if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >>"$log" 2>&1
                rm -rf "${venv:?}/bin" "${venv:?}/lib" "${venv:?}/lib64" "${venv:?}/include" "${venv:?}/pyvenv.cfg"
                "$python" -m venv "$venv" >>"$log" 2>&1
            fi
        fi
        if [[ ! -x "$venv/bin/python" ]]; then
            echo "tools.sh: could not create venv at $venv; log:" >&2
            cat "$log" >&2
            exec 9>&-
            return 1
        fi
    fi

    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -r "$req" >>"$log" 2>&1; then
        echo "tools.sh: pip install -r $req failed; log:" >&2
        cat "$log" >&2
        exec 9>&-
        return 1
    fi

    echo "$want" >"$stamp"
    rm -f "$log"
    exec 9>&-
    echo "tools.sh: dev tools ready in $((SECONDS - start)) s ($venv/bin)" >&2
    return 0
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: install, then expose the tools in the caller's shell without touching its options.
    if _tools_main; then
        _tools_bin="${TOOLS_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv}/bin"
        case ":$PATH:" in
            *":$_tools_bin:"*) ;;
            *) export PATH="$_tools_bin:$PATH" ;;
        esac
        unset _tools_bin
        unset -f _tools_main
    else
        unset -f _tools_main
        return 1
    fi
else
    set -euo pipefail
    _tools_main
fi
