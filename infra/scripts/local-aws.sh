#!/usr/bin/env bash
# A local SQS and S3 (moto_server from the repo's .venv) with the service's queues and exports
# bucket, for `sam local` (infra/env.local.json), for infra/scripts/dev.sh (the exports bucket) and
# for running the worker/sweep binaries against SQS by hand.
#
#   infra/scripts/local-aws.sh start [--docker]   moto on 127.0.0.1:4566 (--docker: 0.0.0.0, so that
#                                                 containers reach it as host.docker.internal:4566),
#                                                 then the queues below (idempotent)
#   infra/scripts/local-aws.sh stop
#   infra/scripts/local-aws.sh env                the variables a binary needs (eval "$(... env)")
#   infra/scripts/local-aws.sh dlq                print the messages waiting in the dead-letter queues
#
# Queues (as in template.yaml: visibility 180 s, webhooks 720 s; dead-letter queue after 5 receives):
#   event-planner-core-local-email              + event-planner-core-local-email-dlq
#   event-planner-core-local-ticket-generation  + event-planner-core-local-ticket-generation-dlq
#   event-planner-core-local-webhooks           + event-planner-core-local-webhooks-dlq
# Bucket (S3, path-style at http://127.0.0.1:4566): event-planner-core-local-exports
# moto keeps everything in memory: a restart starts empty. It does not implement
# StartMessageMoveTask (the DLQ redrive of the console/CLI): infra/README.md shows the manual redrive.
#
# Environment: MOTO_PORT (default 4566).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${MOTO_PORT:-4566}"
STATE="$ROOT/.local/local-aws"
PIDFILE="$STATE/moto-$PORT.pid"
PREFIX=event-planner-core-local
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
say() { printf 'local-aws: %s\n' "$*" >&2; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

queues() {
    "$ROOT/.venv/bin/python" - "$PREFIX" <<'PY'
import json, sys, boto3
prefix = sys.argv[1]
sqs = boto3.client("sqs")
for name, visibility in (("email", "180"), ("ticket-generation", "180"), ("webhooks", "720")):
    dlq = sqs.create_queue(QueueName=f"{prefix}-{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"{prefix}-{name}", Attributes={
        "VisibilityTimeout": visibility,
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]
    print(f"{name}: {url} (dead letters: {dlq})")
s3 = boto3.client("s3")
bucket = f"{prefix}-exports"
try:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
print(f"exports bucket: {bucket}")
PY
}

case "${1:-}" in
    start)
        host=127.0.0.1; [[ "${2:-}" == --docker ]] && host=0.0.0.0
        "$ROOT/infra/scripts/tools.sh"
        mkdir -p "$STATE"
        if ! up; then
            setsid "$ROOT/.venv/bin/moto_server" -H "$host" -p "$PORT" </dev/null >"$STATE/moto-$PORT.log" 2>&1 &
            echo $! >"$PIDFILE"
            for _ in $(seq 1 100); do up && break; sleep 0.1; done
            up || { cat "$STATE/moto-$PORT.log" >&2; say "moto did not start on $host:$PORT"; exit 1; }
            say "moto listening on $host:$PORT (pid $(cat "$PIDFILE"))"
        fi
        queues
        ;;
    stop)
        [[ -f "$PIDFILE" ]] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
        ;;
    env)
        for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL; do echo "export $v=${!v}"; done
        echo "export EMAIL_QUEUE_URL=http://127.0.0.1:$PORT/123456789012/$PREFIX-email"
        echo "export TICKET_QUEUE_URL=http://127.0.0.1:$PORT/123456789012/$PREFIX-ticket-generation"
        echo "export WEBHOOKS_QUEUE_URL=http://127.0.0.1:$PORT/123456789012/$PREFIX-webhooks"
        echo "export EXPORTS_BUCKET=$PREFIX-exports"
        ;;
    dlq)
        "$ROOT/.venv/bin/python" - "$PREFIX" <<'PY'
import sys, boto3
sqs = boto3.client("sqs")
for name in ("email", "ticket-generation", "webhooks"):
    url = sqs.get_queue_url(QueueName=f"{sys.argv[1]}-{name}-dlq")["QueueUrl"]
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                               AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
    print(f"{name}-dlq: {len(msgs)} message(s) shown")
    for m in msgs:
        print("  ", m["MessageId"], m["Body"][:200])
PY
        ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
esac
