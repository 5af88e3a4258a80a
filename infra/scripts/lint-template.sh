#!/usr/bin/env bash
# Lints the SAM template: cfn-lint (errors and warnings fail), `sam validate --lint`, and checkov
# (security checks; every failed check fails, the skipped ones are named with their reasons in
# infra/checkov-skips.yaml), and checks that its dashboard body is infra/dashboard.json
# (infra/scripts/dashboard.sh check).
# Offline and without AWS credentials: dummy credentials and region are set so that no tool walks
# the credential chain (profiles, the EC2 metadata endpoint) or asks AWS anything. The one network
# access: the first run (or a changed infra/requirements-checkov.txt) installs checkov from PyPI
# into <repo>/.venv/checkov (~1.5 min); checkov itself runs with --skip-download and no update check.
#
#   infra/scripts/lint-template.sh [TEMPLATE]     (default: <repo>/template.yaml)
#
# Time on the 2-core machine: ~12 s without checkov, checkov ~15-25 s (both templates, one run).
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

echo "== checkov (infra/checkov-skips.yaml) on the template and on its SAM transform"
# checkov lives in its own venv: every checkov release pins boto3 exactly, and so does aws-sam-cli
# (different versions), so it cannot join requirements-dev.txt. Same fast path as tools.sh: a stamp
# with the hash of infra/requirements-checkov.txt, and an interpreter that still runs.
CHECKOV_REQ="$ROOT/infra/requirements-checkov.txt"
CHECKOV_VENV="${TOOLS_VENV:-$ROOT/.venv}/checkov"
checkov_ready() {
    [[ -f "$CHECKOV_VENV/.requirements.sha256" \
        && "$(cat "$CHECKOV_VENV/.requirements.sha256")" == "$(sha256sum <"$CHECKOV_REQ" | cut -d' ' -f1)" ]] \
        && "$CHECKOV_VENV/bin/python" -c '' >/dev/null 2>&1
}
if ! checkov_ready; then
    echo "lint-template: installing checkov into $CHECKOV_VENV (first run or requirements changed, ~1.5 min)..." >&2
    log="$(mktemp "${TMPDIR:-/tmp}/checkov-install.XXXXXX.log")"
    rm -rf "${CHECKOV_VENV:?}"
    if { "${PYTHON:-python3}" -m venv "$CHECKOV_VENV" \
        && PIP_DISABLE_PIP_VERSION_CHECK=1 "$CHECKOV_VENV/bin/python" -m pip install -q -r "$CHECKOV_REQ"; } >"$log" 2>&1; then
        sha256sum <"$CHECKOV_REQ" | cut -d' ' -f1 >"$CHECKOV_VENV/.requirements.sha256"
        rm -f "$log"
    else
        cat "$log" >&2
        echo "lint-template: could not install checkov (log above)" >&2
        status=1
    fi
fi
if checkov_ready; then
    work="$(mktemp -d "${TMPDIR:-/tmp}/lint-template.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    # The template after the SAM transform (what CloudFormation deploys: the generated IAM roles and
    # policies, API stage, permissions, schedules), made offline by the SAM translator of .venv.
    # CodeUri "." becomes an S3 URI, as `sam package` does. Environment=prod: the stricter settings.
    # Compensating checks for two global skips of infra/checkov-skips.yaml (CKV_AWS_27, CKV_AWS_157).
    "$BIN/python" - "$TEMPLATE" "$work/template.transformed.json" <<'PY' || status=1
import json, sys
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

class NoManagedPolicies:  # the template names managed policies by ARN only
    def load(self):
        return {}

template, matches = decode(sys.argv[1])
if template is None:
    sys.exit(f"checkov: cannot read {sys.argv[1]}: {matches}")
problems = []
for name, res in template["Resources"].items():
    props = res.get("Properties", {})
    if res.get("Type") == "AWS::SQS::Queue" and props.get("SqsManagedSseEnabled") is not True \
            and "KmsMasterKeyId" not in props:
        problems.append(f"{name}: an SQS queue needs SqsManagedSseEnabled: true (CKV_AWS_27 is skipped for that reason)")
    if res.get("Type") == "AWS::RDS::DBInstance":
        multi_az = props.get("MultiAZ")
        if not (multi_az is True or (isinstance(multi_az, dict)
                                     and multi_az.get("Fn::If", [None, None])[:2] == ["IsProd", True])):
            problems.append(f"{name}: MultiAZ must be true in prod (!If [IsProd, true, ...]; CKV_AWS_157 is skipped for that reason)")
    if res.get("Type") == "AWS::Serverless::Function" and props.get("CodeUri") == ".":
        props["CodeUri"] = "s3://bucket/code.zip"
for p in problems:
    print("checkov (compensating check):", p)
try:
    out = transform(template, {"Environment": "prod", "NotificationServiceUrl": "https://example.com"}, NoManagedPolicies())
except Exception as e:  # sam validate reports the details
    sys.exit(f"checkov: the SAM transform failed, checking the template only: {e}")
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1, default=str)
sys.exit(1 if problems else 0)
PY
    files=(-f "$TEMPLATE")
    [[ -s "$work/template.transformed.json" ]] && files+=(-f template.transformed.json)
    start=$SECONDS
    if (cd "$work" && CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE CKV_PARSE_ERROR_FAIL=true \
        "$CHECKOV_VENV/bin/checkov" --config-file "$ROOT/infra/checkov-skips.yaml" "${files[@]}"); then
        echo "checkov: ok ($((SECONDS - start)) s)"
    else
        status=1
    fi
fi

echo "== dashboard body (infra/dashboard.json embedded in the template)"
if [[ "$TEMPLATE" == "$ROOT/template.yaml" ]]; then
    "$SCRIPT_DIR/dashboard.sh" check || status=1
fi

if (( status != 0 )); then
    echo "lint-template: FAILED" >&2
fi
exit "$status"
