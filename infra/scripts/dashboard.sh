#!/usr/bin/env bash
# The CloudWatch dashboard lives in infra/dashboard.json (with CloudFormation ${...} placeholders:
# resource names, ${AWS::Region}, ${AWS::StackName}); template.yaml embeds the same JSON as the
# DashboardBody of its `Dashboard` resource (`!Sub |` block), so the stack creates it.
#
#   infra/scripts/dashboard.sh check   exit 1 when template.yaml's body differs from the file
#                                      (infra/scripts/lint-template.sh runs this)
#   infra/scripts/dashboard.sh sync    copy infra/dashboard.json into template.yaml
#
# Edit the JSON file, run `sync`, deploy. (The console's dashboard editor shows the substituted
# JSON; copy changes made there back into the file by hand.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mode="${1:-check}"
case "$mode" in check|sync) ;; *) echo "usage: $0 check|sync" >&2; exit 2 ;; esac

python3 - "$mode" "$ROOT/template.yaml" "$ROOT/infra/dashboard.json" <<'PY'
import json, re, sys

mode, template_path, dashboard_path = sys.argv[1:]
with open(dashboard_path, encoding="utf-8") as f:
    dashboard_text = f.read()
dashboard = json.loads(dashboard_text)  # the file must be valid JSON
with open(template_path, encoding="utf-8") as f:
    lines = f.read().split("\n")

# The block scalar after `DashboardBody: !Sub |`: every following line indented deeper (or blank).
start = next((i for i, l in enumerate(lines) if re.match(r"^\s+DashboardBody: !Sub \|\s*$", l)), None)
if start is None:
    sys.exit("dashboard.sh: no `DashboardBody: !Sub |` line in template.yaml")
key_indent = len(lines[start]) - len(lines[start].lstrip())
end = start + 1
while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > key_indent):
    end += 1
while end > start + 1 and not lines[end - 1].strip():  # trailing blank lines belong to what follows
    end -= 1
body = "\n".join(l[key_indent + 2:] for l in lines[start + 1:end])

if mode == "check":
    try:
        embedded = json.loads(body)
    except json.JSONDecodeError as e:
        sys.exit(f"dashboard.sh: the DashboardBody in template.yaml is not valid JSON: {e}")
    if embedded != dashboard:
        sys.exit("dashboard.sh: template.yaml's DashboardBody differs from infra/dashboard.json; run infra/scripts/dashboard.sh sync")
    print("dashboard: template.yaml matches infra/dashboard.json")
else:
    pad = " " * (key_indent + 2)
    new_body = [pad + l if l.strip() else "" for l in dashboard_text.rstrip("\n").split("\n")]
    lines[start + 1:end] = new_body
    with open(template_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"dashboard: copied infra/dashboard.json into {template_path}")
PY
