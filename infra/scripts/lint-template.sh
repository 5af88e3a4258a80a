#!/usr/bin/env bash
# Lints the SAM template: cfn-lint (errors and warnings fail) and `sam validate --lint`, and checks
# that its dashboard body is infra/dashboard.json (infra/scripts/dashboard.sh check).
# Offline and without AWS credentials: dummy credentials and region are set so that no tool walks
# the credential chain (profiles, the EC2 metadata endpoint) or asks AWS anything.
#
#   infra/scripts/lint-template.sh [TEMPLATE]     (default: <repo>/template.yaml)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
TEMPLATE="${1:-$ROOT/template.yaml}"
[[ -f "$TEMPLATE" ]] || { echo "lint-template: no such file: $TEMPLATE" >&2; exit 1; }

"$SCRIPT_DIR/tools.sh"
BIN="${TOOLS_VENV:-$ROOT/.venv}/bin"

# Isolated, offline AWS environment for the linters only.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
export AWS_ACCESS_KEY_ID=lint AWS_SECRET_ACCESS_KEY=lint
export AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_CHECK_UPDATE=1 # no phoning home, no update check

status=0
echo "== cfn-lint $TEMPLATE"
if "$BIN/cfn-lint" --format parseable -- "$TEMPLATE"; then
    echo "cfn-lint: ok"
else
    status=1
fi

echo "== sam validate --lint $TEMPLATE"
# Run from the template's directory so samconfig.toml there is found (its [default.validate] section).
if (cd "$(dirname "$TEMPLATE")" && "$BIN/sam" validate --lint --region eu-west-1 --template-file "$TEMPLATE"); then
    :
else
    status=1
fi

echo "== functions of the template = binaries of the workspace (what sam build will build)"
# `sam build` (infra/scripts/build.sh) takes 15-25 min on 2 cores, too long for the test command;
# this checks, in a second, the inputs it depends on: every function is built by cargo-lambda
# from the workspace root, its Binary is a binary target of the workspace, and every binary of
# functions/* is deployed by some function.
if [[ "$TEMPLATE" == "$ROOT/template.yaml" ]]; then
    meta="$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 --offline)"
    META="$meta" "$BIN/python" - "$TEMPLATE" <<'PY' || status=1
import json, os, sys
from cfnlint.decode import decode
meta = json.loads(os.environ["META"])
root = meta["workspace_root"]
bins = {}
for pkg in meta["packages"]:
    for target in pkg["targets"]:
        if "bin" in target["kind"]:
            bins[target["name"]] = os.path.relpath(os.path.dirname(pkg["manifest_path"]), root)
template, _ = decode(sys.argv[1])
problems, deployed = [], set()
for name, res in template["Resources"].items():
    if res.get("Type") != "AWS::Serverless::Function":
        continue
    md, props = res.get("Metadata", {}), res.get("Properties", {})
    binary = md.get("BuildProperties", {}).get("Binary")
    if md.get("BuildMethod") != "rust-cargolambda":
        problems.append(f"{name}: Metadata.BuildMethod is not rust-cargolambda")
    if props.get("CodeUri") != ".":
        problems.append(f"{name}: CodeUri must be the workspace root (.)")
    if binary not in bins:
        problems.append(f"{name}: Binary {binary!r} is not a binary of the workspace")
    deployed.add(binary)
for binary, where in sorted(bins.items()):
    # local-server is the developer's all-routes HTTP server, not a Lambda function.
    if where.startswith("functions/") and binary not in deployed and binary != "local-server":
        problems.append(f"{where}: binary {binary!r} is deployed by no function of the template")
for p in problems:
    print("template/workspace:", p)
print(f"template/workspace: {len(deployed)} functions, {'ok' if not problems else 'MISMATCH'}")
sys.exit(1 if problems else 0)
PY
fi

echo "== dashboard body (infra/dashboard.json embedded in the template)"
if [[ "$TEMPLATE" == "$ROOT/template.yaml" ]]; then
    "$SCRIPT_DIR/dashboard.sh" check || status=1
fi

if (( status != 0 )); then
    echo "lint-template: FAILED" >&2
fi
exit "$status"
