#!/usr/bin/env python3
"""The checks of infra/scripts/sam-local.sh (run by it with the repo's .venv python: boto3 comes with moto).

    sam-local-smoke.py stub  --host H --port P --dir D   stand-ins the functions call on the host:
        POST /api/notifications/email  the notification service (202 {"id"}; each body appended to D/notifications.jsonl)
        PUT  /cfn/<anything>           a CloudFormation pre-signed ResponseURL (200; body appended to D/cfn-responses.jsonl)
    sam-local-smoke.py smoke                              every function under `sam local` (configuration: SMOKE_* variables
                                                          set by sam-local.sh); one line per check appended to SMOKE_RESULTS
                                                          (function, how, result, seconds); exit 1 when a check failed

Nothing here passes by default: every check compares what came back (HTTP status and body, the function's
return value, rows in PostgreSQL, messages in SQS, requests the stand-ins received) with what must be there.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone


# --------------------------------------------------------------------------------------------- stand-ins
def run_stub(host, port, directory):
    os.makedirs(directory, exist_ok=True)
    lock = threading.Lock()
    counter = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self):
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n).decode("utf-8", "replace") if n else ""

        def _answer(self, status, doc):
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, name, entry):
            with lock, open(os.path.join(directory, name), "a") as f:
                f.write(json.dumps(entry) + "\n")

        def do_POST(self):
            body = self._body()
            if self.path.rstrip("/").endswith("/api/notifications/email"):
                with lock:
                    counter["n"] += 1
                    mid = f"stub-{counter['n']}"
                try:
                    doc = json.loads(body)
                except ValueError:
                    return self._answer(400, {"error": "body is not JSON"})
                self._record("notifications.jsonl", {"id": mid, "idempotencyKey": self.headers.get("Idempotency-Key"),
                                                     "to": doc.get("to"), "subject": doc.get("subject"),
                                                     "attachments": [a.get("filename") for a in doc.get("attachments") or []]})
                return self._answer(202, {"id": mid})
            self._answer(404, {"error": f"no such stub route {self.path}"})

        def do_PUT(self):
            body = self._body()
            if self.path.startswith("/cfn/"):
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body}
                self._record("cfn-responses.jsonl", {"path": self.path, "contentType": self.headers.get("content-type"), "body": doc})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self._answer(404, {"error": f"no such stub route {self.path}"})

        def log_message(self, fmt, *args):
            sys.stderr.write("stub: " + (fmt % args) + "\n")

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    server.serve_forever()


# --------------------------------------------------------------------------------------------- helpers
class CheckFailed(Exception):
    pass


def need(cond, message):
    if not cond:
        raise CheckFailed(message)


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f"sam-local-smoke: {name} is not set (run infra/scripts/sam-local.sh)")
    return v


def log(msg):
    sys.stderr.write(f"smoke: {msg}\n")
    sys.stderr.flush()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret, claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


class Smoke:
    def __init__(self):
        self.root = env("SMOKE_ROOT")
        self.state = env("SMOKE_STATE")
        self.results = env("SMOKE_RESULTS")
        self.template = env("SMOKE_TEMPLATE")
        self.env_json = env("SMOKE_ENV_JSON")
        self.params = env("SMOKE_PARAMS")
        self.image = env("SMOKE_IMAGE")
        self.host_ip = env("SMOKE_HOST_IP")
        self.api_port = int(env("SMOKE_API_PORT"))
        self.stub_url = env("SMOKE_STUB_URL")
        self.stub_dir = env("SMOKE_STUB_DIR")
        self.psql = env("SMOKE_PSQL").split()
        self.moto = env("SMOKE_MOTO_URL")
        self.warm = os.environ.get("SMOKE_WARM", "LAZY")
        self.jwt_secret = json.load(open(self.env_json))["Parameters"]["JWT_SECRET"]
        self.failures = 0
        self.api_proc = None
        self.api_log = os.path.join(self.state, "start-api.log")
        self.common = ["--template", self.template, "--env-vars", self.env_json, "--parameter-overrides", self.params,
                       "--skip-pull-image", "--invoke-image", self.image, "--region", "eu-west-1",
                       "--add-host", f"host.docker.internal:{self.host_ip}"]
        import boto3  # the venv's (moto depends on it)
        self.sqs = boto3.client("sqs", endpoint_url=self.moto, region_name="eu-west-1",
                                aws_access_key_id="test", aws_secret_access_key="test")
        self.queue_urls = {q: self.sqs.get_queue_url(QueueName=f"event-planner-core-local-{q}")["QueueUrl"]
                           for q in ("email", "ticket-generation")}
        self.ctx = {}

    # ---- bookkeeping
    def record(self, function, how, result, seconds):
        with open(self.results, "a") as f:
            f.write("\t".join([function, how, result.replace("\t", " ").replace("\n", " "), f"{seconds:.1f}"]) + "\n")

    def check(self, function, how, fn):
        """Runs fn() (returns a short description of what it saw); one result line either way."""
        start = time.monotonic()
        try:
            detail = fn()
            self.record(function, how, f"PASS {detail or ''}".strip(), time.monotonic() - start)
            log(f"PASS {function}: {how}: {detail}")
            return True
        except Exception as e:  # noqa: BLE001 - every failure is a failed check
            self.failures += 1
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, CheckFailed) else str(e)
            self.record(function, how, f"FAIL {msg[:300]}", time.monotonic() - start)
            log(f"FAIL {function}: {how}: {msg}")
            return False

    def sql(self, query):
        out = subprocess.run(self.psql + ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise CheckFailed(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    # ---- sam local invoke
    def invoke(self, function, event, name):
        path = os.path.join(self.state, f"event-{name}.json")
        with open(path, "w") as f:
            json.dump(event, f, indent=1)
        cmd = ["sam", "local", "invoke", function, "--event", path] + self.common
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=self.root)
        with open(os.path.join(self.state, f"invoke-{name}.log"), "w") as f:
            f.write(f"$ {' '.join(cmd)}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
        # SAM prints the function's return value on stdout (the last non-empty line); logs go to stderr.
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        need(p.returncode == 0 and lines, f"sam local invoke exited {p.returncode}; see {self.state}/invoke-{name}.log: "
             + " | ".join(p.stderr.strip().splitlines()[-3:]))
        try:
            out = json.loads(lines[-1])
        except ValueError:
            raise CheckFailed(f"output is not JSON: {lines[-1][:200]}")
        if isinstance(out, dict) and "errorType" in out:
            raise CheckFailed(f"function error {out.get('errorType')}: {str(out.get('errorMessage'))[:200]}")
        return out

    # ---- HTTP through start-api
    def http(self, method, path, body=None, token=None, expect=None, raw=False):
        url = f"http://127.0.0.1:{self.api_port}{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        req.add_header("x-request-id", f"sam-smoke-{uuid.uuid4().hex[:8]}")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, headers, payload = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, payload = e.code, e.headers, e.read()
        if raw:
            doc = payload
        else:
            try:
                doc = json.loads(payload) if payload else None
            except ValueError:
                raise CheckFailed(f"{method} {path}: {status}, body is not JSON: {payload[:200]!r}")
        if expect is not None:
            need(status == expect, f"{method} {path}: expected {expect}, got {status}: {str(doc)[:300]}")
        return status, headers, doc

    def start_api(self):
        cmd = ["sam", "local", "start-api", "--port", str(self.api_port), "--host", "127.0.0.1"] + self.common
        if self.warm:
            cmd += ["--warm-containers", self.warm]
        log(f"starting: {' '.join(cmd)} (log: {self.api_log})")
        self.api_proc = subprocess.Popen(cmd, stdout=open(self.api_log, "w"), stderr=subprocess.STDOUT,
                                         cwd=self.root, start_new_session=True,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        with open(os.path.join(self.state, "start-api.pid"), "w") as f:
            f.write(str(self.api_proc.pid))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            need(self.api_proc.poll() is None, f"sam local start-api exited {self.api_proc.returncode}: "
                 + " | ".join(open(self.api_log).read().strip().splitlines()[-5:]))
            try:
                socket.create_connection(("127.0.0.1", self.api_port), timeout=1).close()
                return f"listening on 127.0.0.1:{self.api_port} (warm containers: {self.warm or 'off'})"
            except OSError:
                time.sleep(0.5)
        raise CheckFailed("sam local start-api did not listen within 120 s")

    def stop_api(self):
        # SIGINT first: SAM stops its warm containers on KeyboardInterrupt; then TERM, then KILL.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not self.api_proc or self.api_proc.poll() is not None:
                break
            try:
                os.killpg(self.api_proc.pid, sig)
                self.api_proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass

    # ---- SQS: real messages -> the event the event source mapping would send (shape of infra/fixtures/sqs-event.json)
    def receive(self, queue, want, timeout=20):
        """Receives from the queue until every predicate of `want` matched one message; returns the matches."""
        url = self.queue_urls[queue]
        found, seen = {}, []
        deadline = time.monotonic() + timeout
        while len(found) < len(want) and time.monotonic() < deadline:
            msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                            VisibilityTimeout=120, AttributeNames=["All"]).get("Messages", [])
            for m in msgs:
                try:
                    body = json.loads(m["Body"])
                except ValueError:
                    body = None
                matched = False
                for key, pred in want.items():
                    if key not in found and body is not None and pred(body):
                        found[key] = m
                        matched = True
                        break
                if not matched:
                    seen.append(m)
        # Messages of other rows (earlier runs, other jobs): back to the queue at once.
        for m in seen:
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        missing = [k for k in want if k not in found]
        need(not missing, f"{queue} queue: no message for {missing} within {timeout}s ({len(seen)} other message(s))")
        return found

    def sqs_event(self, queue, messages):
        template = json.load(open(os.path.join(self.root, "infra/fixtures/sqs-event.json")))["Records"][0]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_urls[queue], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        records = []
        for m in messages:
            r = dict(template)
            attributes = dict(template.get("attributes", {}))
            attributes.update({k: v for k, v in (m.get("Attributes") or {}).items()
                               if k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")})
            r.update({"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                      "md5OfBody": m["MD5OfBody"], "eventSourceARN": arn, "attributes": attributes,
                      "messageAttributes": {}})
            records.append(r)
        return {"Records": records}

    def delete(self, queue, messages):
        for m in messages:
            self.sqs.delete_message(QueueUrl=self.queue_urls[queue], ReceiptHandle=m["ReceiptHandle"])

    def stub_lines(self, name):
        path = os.path.join(self.stub_dir, name)
        if not os.path.exists(path):
            return []
        return [json.loads(line) for line in open(path) if line.strip()]

    # ------------------------------------------------------------------------------------------ the run
    def run(self):
        c = self.ctx
        migrations = sorted(f for f in os.listdir(os.path.join(self.root, "migrations")) if re.match(r"V\d+__.*\.sql$", f))

        # --- MigrateFunction: direct invocation ({}), then a CloudFormation Create answered to a local ResponseURL
        def migrate_direct():
            out = self.invoke("MigrateFunction", {}, "migrate-direct")
            need(isinstance(out, dict) and out.get("total") == len(migrations),
                 f"expected total={len(migrations)} migrations, got {out}")
            tables = self.sql("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events','guests','tickets','job_outbox','processed_jobs')")
            need(tables == "5", f"expected the 5 core tables after migrating, found {tables}")
            return f"applied {len(out.get('applied') or [])}, current {out.get('current')}, total {out.get('total')}"
        ok = self.check("MigrateFunction", "sam local invoke, event {}", migrate_direct)

        def migrate_cfn():
            event = json.load(open(os.path.join(self.root, "infra/fixtures/cfn-custom-resource-create.json")))
            rid = str(uuid.uuid4())
            event["RequestId"] = rid
            event["ResponseURL"] = f"{self.stub_url}/cfn/{rid}?X-Amz-Signature=local"
            out = self.invoke("MigrateFunction", event, "migrate-cfn-create")
            need(out.get("Status") == "SUCCESS", f"function answered {out}")
            puts = [p for p in self.stub_lines("cfn-responses.jsonl") if p["path"].startswith(f"/cfn/{rid}")]
            need(len(puts) == 1, f"the ResponseURL stand-in received {len(puts)} PUT(s) for request {rid}")
            body = puts[0]["body"]
            need(body.get("Status") == "SUCCESS" and body.get("RequestId") == rid and body.get("LogicalResourceId") == "Migrations",
                 f"response delivered to the ResponseURL: {body}")
            return f"PUT to ResponseURL: {body.get('Status')}, {body.get('Reason')}"
        self.check("MigrateFunction", "sam local invoke, CloudFormation Create (fixture, local ResponseURL)", migrate_cfn)
        if not ok:
            log("the database is not migrated: the other functions cannot work; stopping")
            return

        # --- the HTTP functions under start-api
        if not self.check("(sam local start-api)", f"--warm-containers {self.warm or 'off'}", self.start_api):
            return
        try:
            self.http_checks()
            self.worker_checks()
            self.after_worker_checks()
        finally:
            self.stop_api()

        def probe():
            out = self.invoke("HealthProbeFunction", json.load(open(os.path.join(self.root, "infra/fixtures/eventbridge-scheduled-event.json"))), "health-probe")
            flags = {k: out.get(k) for k in ("Healthy", "DatabaseUp", "RedisUp", "QueueUp")}
            need(all(v == 1 for v in flags.values()), f"expected every flag 1: {flags}")
            return " ".join(f"{k}={v}" for k, v in flags.items())
        self.check("HealthProbeFunction", "sam local invoke, EventBridge schedule fixture", probe)

    def http_checks(self):
        c = self.ctx
        suffix = uuid.uuid4().hex[:8]
        organizer = f"sam-smoke-{suffix}"
        now = int(time.time())
        c["token"] = token = hs256_token(self.jwt_secret, {"sub": organizer, "role": "organizer", "iat": now, "exp": now + 3600})

        def live():
            _, _, doc = self.http("GET", "/health", expect=200)
            need(doc.get("status") == "healthy", f"body {doc}")
            return f"200 status={doc['status']} version={doc.get('version')}"
        self.check("HealthFunction", "start-api GET /health", live)

        def ready():
            _, _, doc = self.http("GET", "/health/ready", expect=200)
            deps = doc.get("dependencies") or {}
            need(doc.get("status") == "ready" and deps and all(deps.values()), f"body {doc}")
            return "200 ready " + " ".join(f"{k}={v}" for k, v in deps.items())
        self.check("HealthFunction", "start-api GET /health/ready", ready)

        def openapi():
            _, _, doc = self.http("GET", "/api/openapi.json", expect=200)
            need(isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3"), f"not an OpenAPI document: {str(doc)[:200]}")
            return f"200 openapi {doc['openapi']}, {len(doc.get('paths', {}))} paths"
        self.check("HealthFunction", "start-api GET /api/openapi.json", openapi)

        def unauthorized():
            _, _, doc = self.http("GET", "/api/events", expect=401)
            need(doc.get("error", {}).get("code") == "UNAUTHORIZED", f"body {doc}")
            return "401 UNAUTHORIZED without a token"
        self.check("EventsFunction", "start-api GET /api/events (no token)", unauthorized)

        def create():
            date = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            body = {"title": f"SAM local smoke {suffix}", "description": "created by infra/scripts/sam-local.sh",
                    "eventDate": date, "location": "Docker bridge", "maxAttendees": 100,
                    "ticketTypes": [{"name": "General", "price": 0, "quantity": 50}, {"name": "VIP", "price": 25.5, "quantity": 5}]}
            _, _, doc = self.http("POST", "/api/events", body, token, expect=201)
            ev = doc["data"]
            need(ev["status"] == "draft" and ev["organizerId"] == organizer and len(ev["ticketTypes"]) == 2, f"event {ev}")
            c["event_id"] = ev["id"]
            c["ticket_type_id"] = ev["ticketTypes"][0]["id"]
            return f"201 event {ev['id']} draft, 2 ticket types"
        if not self.check("EventsFunction", "start-api POST /api/events", create):
            return
        eid = c["event_id"]

        def publish():
            _, _, doc = self.http("PATCH", f"/api/events/{eid}", {"status": "published"}, token, expect=200)
            need(doc["data"]["status"] == "published", f"event {doc['data']}")
            return f"200 event {eid} published"
        self.check("EventsFunction", "start-api PATCH /api/events/{id}", publish)

        def listing():
            _, _, doc = self.http("GET", f"/api/events?status=upcoming&search={suffix}&sort=eventDate", token=token, expect=200)
            ids = [e["id"] for e in doc["data"]["events"]]
            need(ids == [eid] and doc["data"]["pagination"]["total"] == 1, f"list {ids}, pagination {doc['data']['pagination']}")
            return f"200 {len(ids)} event, total {doc['data']['pagination']['total']}"
        self.check("EventsFunction", "start-api GET /api/events?status=upcoming&search=", listing)

        def register():
            c["email"] = email = f"guest-{suffix}@example.com"
            body = {"firstName": "Sam", "lastName": "Local", "email": email, "phone": "+4915112345678", "ticketTypeId": c["ticket_type_id"]}
            _, _, doc = self.http("POST", f"/api/events/{eid}/guests", body, token, expect=201)
            guest, ticket = doc["data"]["guest"], doc["data"]["ticket"]
            need(guest["status"] == "confirmed" and ticket and ticket["status"] == "active", f"guest {guest}, ticket {ticket}")
            c["guest_id"], c["ticket_id"], c["qr_payload"] = guest["id"], ticket["id"], ticket["qrPayload"]
            jobs = self.sql(f"SELECT string_agg(job_type, ',' ORDER BY job_type) FROM job_outbox WHERE payload->>'guestId' = '{guest['id']}' OR payload->>'ticketId' = '{ticket['id']}'")
            need(jobs == "generate_ticket,registration_confirmation", f"outbox rows of the registration: {jobs!r}")
            return f"201 guest {guest['id']} confirmed, ticket {ticket['id']} {ticket['ticketCode']}; outbox: {jobs}"
        if not self.check("GuestsFunction", "start-api POST /api/events/{id}/guests", register):
            return

        def duplicate():
            body = {"firstName": "Sam", "lastName": "Again", "email": c["email"].upper(), "ticketTypeId": c["ticket_type_id"]}
            _, _, doc = self.http("POST", f"/api/events/{eid}/guests", body, token, expect=409)
            need(doc["error"]["code"] == "DUPLICATE_GUEST", f"body {doc}")
            return "409 DUPLICATE_GUEST (same email, other case)"
        self.check("GuestsFunction", "start-api POST /api/events/{id}/guests (duplicate)", duplicate)

        def guests():
            _, _, doc = self.http("GET", f"/api/events/{eid}/guests?search=guest-{suffix}", token=token, expect=200)
            ids = [g["id"] for g in doc["data"]["guests"]]
            need(ids == [c["guest_id"]], f"guests {ids}")
            return f"200 guests {ids}"
        self.check("GuestsFunction", "start-api GET /api/events/{id}/guests", guests)

        def ticket():
            _, _, doc = self.http("GET", f"/api/tickets/{c['ticket_id']}", token=token, expect=200)
            t = doc["data"]
            need(re.match(r"^TC-\d{4}-\S{8,}$", t["ticketCode"]) and t["guest"]["id"] == c["guest_id"] and t["event"]["id"] == eid,
                 f"ticket {str(t)[:300]}")
            return f"200 {t['ticketCode']}, qrCodeData {'set' if t.get('qrCodeData') else 'null (job pending)'}"
        self.check("TicketsFunction", "start-api GET /api/tickets/{id}", ticket)

        def scanner_key():
            _, _, doc = self.http("GET", f"/api/events/{eid}/scanner-key", token=token, expect=200)
            k = doc["data"]
            need(k["algorithm"] == "Ed25519" and len(base64.b64decode(k["publicKey"])) == 32, f"key {k}")
            return f"200 Ed25519 key {k['keyId']}"
        self.check("TicketsFunction", "start-api GET /api/events/{id}/scanner-key", scanner_key)

        def stats():
            _, _, doc = self.http("GET", f"/api/events/{eid}/stats", token=token, expect=200)
            s = doc["data"]
            need(s["registered"] == 1 and s["confirmed"] == 1 and s["capacity"] == 100, f"stats {s}")
            return f"200 registered={s['registered']} confirmed={s['confirmed']} capacity={s['capacity']}"
        self.check("TicketsFunction", "start-api GET /api/events/{id}/stats", stats)

        def qr():
            status, headers, png = self.http("GET", f"/api/tickets/{c['ticket_id']}/qr", token=token, expect=200, raw=True)
            need(headers.get("content-type", "").startswith("image/png") and png[:8] == b"\x89PNG\r\n\x1a\n",
                 f"content-type {headers.get('content-type')}, first bytes {png[:16]!r}")
            return f"200 image/png, {len(png)} bytes"
        self.check("TicketsFunction", "start-api GET /api/tickets/{id}/qr", qr)

    def worker_checks(self):
        c = self.ctx
        if "ticket_id" not in c:
            def skipped():
                raise CheckFailed("no registration to relay (an earlier check failed)")
            for fn in ("OutboxSweepFunction", "TicketWorkerFunction", "EmailWorkerFunction"):
                self.check(fn, "not run", skipped)
            return
        gid, tid, eid = c["guest_id"], c["ticket_id"], c["event_id"]
        scheduled = json.load(open(os.path.join(self.root, "infra/fixtures/eventbridge-scheduled-event.json")))

        def sweep():
            out = self.invoke("OutboxSweepFunction", scheduled, "outbox-sweep")
            need(out.get("failed") == 0 and out.get("sent", 0) >= 2, f"report {out}")
            left = self.sql(f"SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL AND (payload->>'guestId' = '{gid}' OR payload->>'ticketId' = '{tid}')")
            need(left == "0", f"{left} job(s) of the registration still undispatched")
            return f"sent={out['sent']} failed={out['failed']} pending={out.get('pending')}"
        if not self.check("OutboxSweepFunction", "sam local invoke, EventBridge schedule fixture", sweep):
            return

        def ticket_worker():
            found = self.receive("ticket-generation", {"generate_ticket": lambda b: b.get("type") == "generate_ticket" and b["payload"].get("ticketId") == tid})
            msg = found["generate_ticket"]
            job_id = json.loads(msg["Body"])["jobId"]
            out = self.invoke("TicketWorkerFunction", self.sqs_event("ticket-generation", [msg]), "ticket-worker")
            need(out.get("batchItemFailures") == [], f"response {out}")
            self.delete("ticket-generation", [msg])
            outcome = self.sql(f"SELECT outcome FROM processed_jobs WHERE job_id = '{job_id}'")
            need(outcome == "done", f"processed_jobs outcome of {job_id}: {outcome!r}")
            qr = self.sql(f"SELECT length(qr_code_data) FROM tickets WHERE id = {tid}")
            need(qr.isdigit() and int(qr) > 100, f"tickets.qr_code_data length {qr!r}")
            ready = self.sql(f"SELECT count(*) FROM job_outbox WHERE job_type = 'ticket_ready' AND payload->>'ticketId' = '{tid}'")
            need(ready == "1", f"ticket_ready jobs written: {ready}")
            return f"batchItemFailures=[], job {job_id[:8]} done, QR stored ({qr} chars), ticket_ready queued"
        if not self.check("TicketWorkerFunction", "sam local invoke, SQS event (fixture shape, real message)", ticket_worker):
            return

        def email_worker():
            # The worker relays the ticket_ready job it wrote; a sweep sends it if that relay did not.
            if self.sql(f"SELECT count(*) FROM job_outbox WHERE job_type = 'ticket_ready' AND payload->>'ticketId' = '{tid}' AND dispatched_at IS NULL") != "0":
                self.invoke("OutboxSweepFunction", scheduled, "outbox-sweep-2")
            found = self.receive("email", {
                "registration_confirmation": lambda b: b.get("type") == "registration_confirmation" and b["payload"].get("guestId") == gid,
                "ticket_ready": lambda b: b.get("type") == "ticket_ready" and b["payload"].get("ticketId") == tid,
            })
            msgs = list(found.values())
            job_ids = [json.loads(m["Body"])["jobId"] for m in msgs]
            before = len(self.stub_lines("notifications.jsonl"))
            out = self.invoke("EmailWorkerFunction", self.sqs_event("email", msgs), "email-worker")
            need(out.get("batchItemFailures") == [], f"response {out}")
            self.delete("email", msgs)
            outcomes = self.sql("SELECT string_agg(outcome, ',') FROM processed_jobs WHERE job_id IN (%s)" % ",".join(f"'{j}'" for j in job_ids))
            need(outcomes == "done,done", f"processed_jobs outcomes: {outcomes!r}")
            sent = [n for n in self.stub_lines("notifications.jsonl")[before:] if n["idempotencyKey"] in job_ids]
            need(len(sent) == 2 and all(n["to"] == c["email"] for n in sent),
                 f"notification stand-in received {[(n['to'], n['idempotencyKey']) for n in sent]}")
            attachments = sum(len(n["attachments"]) for n in sent)
            return f"batchItemFailures=[], 2 jobs done, 2 emails to {c['email']} ({attachments} attachment(s))"
        self.check("EmailWorkerFunction", "sam local invoke, SQS event (fixture shape, 2 real messages)", email_worker)

        def poison():
            event = json.load(open(os.path.join(self.root, "infra/fixtures/sqs-event.json")))
            mid = event["Records"][0]["messageId"]
            out = self.invoke("EmailWorkerFunction", event, "email-worker-poison")
            failures = [f.get("itemIdentifier") for f in out.get("batchItemFailures", [])]
            need(failures == [mid], f"expected exactly [{mid}] reported, got {out}")
            return "the crate's fixture body (not a job) reported in batchItemFailures"
        self.check("EmailWorkerFunction", "sam local invoke, infra/fixtures/sqs-event.json (poison)", poison)

    def after_worker_checks(self):
        c = self.ctx
        if "ticket_id" not in c:
            return
        token, tid, eid = c["token"], c["ticket_id"], c["event_id"]

        def ticket_has_qr():
            _, _, doc = self.http("GET", f"/api/tickets/{tid}", token=token, expect=200)
            data = doc["data"].get("qrCodeData") or ""
            need(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n", f"qrCodeData {data[:40]!r}")
            return "200 qrCodeData is the PNG the ticket worker stored"
        self.check("TicketsFunction", "start-api GET /api/tickets/{id} (after the worker)", ticket_has_qr)

        def validate():
            body = {"code": c["qr_payload"], "scannerId": "sam-smoke", "location": "Entrance A"}
            _, _, doc = self.http("POST", "/api/tickets/validate", body, token, expect=200)
            need(doc["data"]["valid"] is True, f"body {doc}")
            _, _, again = self.http("POST", f"/api/tickets/{tid}/validate", {"scannerId": "sam-smoke-2", "location": "Entrance B"}, token, expect=409)
            need(again["error"]["code"] == "TICKET_ALREADY_VALIDATED", f"second scan {again}")
            _, _, st = self.http("GET", f"/api/events/{eid}/stats", token=token, expect=200)
            s = st["data"]
            need(s["checkedIn"] == 1 and s["scans"]["accepted"] == 1 and s["scans"]["rejected"] == 1, f"stats {s}")
            return "200 valid (signed QR payload), then 409 TICKET_ALREADY_VALIDATED; stats checkedIn=1 accepted=1 rejected=1"
        self.check("TicketsFunction", "start-api POST /api/tickets/validate + /{id}/validate", validate)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stub")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--dir", required=True)
    sub.add_parser("smoke")
    args = ap.parse_args()
    if args.cmd == "stub":
        run_stub(args.host, args.port, args.dir)
        return 0
    smoke = Smoke()

    def on_term(*_):
        smoke.stop_api()
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        smoke.run()
    finally:
        smoke.stop_api()
    return 1 if smoke.failures else 0


if __name__ == "__main__":
    sys.exit(main())
