"""A stand-in for the Heroku Platform API and the Terraform Cloud API, served
over real HTTP/1.1 on 127.0.0.1 for the pull tests.

It serves what the documentation describes: the Enterprise archive list and
month info (with a presigned-style `url` on a separate path that, like S3,
refuses a request carrying an Authorization header), and the Terraform
audit trail with `since`, `page[number]`, `page[size]` and `pagination`,
keeping only the last 14 days. Faults are injected on request.

usage: fake_api.py SCENARIO.json   (prints "PORT <n>" once listening)

The scenario file is read again on every request, so a test can change it
between pulls. Keys:
  token                      the Bearer token every API request must carry
  heroku.account             the Enterprise account
  heroku.archives            [{year, month, file, checksum?, size?}] (file: gzip bytes)
  heroku.require_variant     answer 406 unless Accept asks for version=3.audit-trail
  heroku.events              {"YYYY-MM-DD": [event, ...]}: the daily events
  heroku.page_size           events per page (206 + Next-Range until the last)
  heroku.stuck               every events page is the first, with the same Next-Range
  terraform.events           audit-trail events (newest first is not required)
  terraform.page_size        the largest page served (default: page[size])
  terraform.endless          every page names a next page, even past the last
  faults                     [{id, path, kind, times?, retry_after?, reset?}]: the
                             first `times` requests whose path starts with `path`
                             get `kind`: 429 (with Retry-After, or with
                             X-RateLimit-Reset when `reset` is given) | 500 |
                             huge (a 40 MiB answer) | reset (headers, then half the body,
                             then the connection closes) | badsum (the month info
                             gives a wrong checksum) | truncate (the download serves
                             half the file) | expired (the download answers 403) |
                             slow (waits `seconds`, then answers) | trickle (the
                             download sends its body in `pieces` parts, `seconds`
                             apart)
  log                        a file each request is appended to, as
                             "METHOD PATH auth=yes|no"
"""

import datetime
import hashlib
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCENARIO = sys.argv[1]
USED = {}
LOCK = threading.Lock()


def scenario():
    with open(SCENARIO) as f:
        return json.load(f)


def take_fault(s, path):
    for fault in s.get("faults", []):
        if not path.startswith(fault["path"]):
            continue
        with LOCK:
            used = USED.get(fault["id"], 0)
            if used < fault.get("times", 1):
                USED[fault["id"]] = used + 1
                return fault
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        s = scenario()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization")
        if s.get("log"):
            with LOCK, open(s["log"], "a") as f:
                f.write(f"GET {self.path} auth={'yes' if auth else 'no'}\n")
        fault = take_fault(s, path)
        kind = fault["kind"] if fault else None
        if kind == "slow":
            time.sleep(fault.get("seconds", 5))
        if kind == "429":
            # Terraform Cloud says when its window resets (seconds, a float);
            # others send Retry-After.
            if "reset" in fault:
                wait = {"X-RateLimit-Limit": "30", "X-RateLimit-Reset": str(fault["reset"])}
            else:
                wait = {"Retry-After": str(fault.get("retry_after", 1))}
            return self.send(429, {"id": "rate_limit", "message": "slow down"}, headers=wait)
        if kind == "huge":
            # An answer no API page is: 40 MiB of blanks in an array.
            return self.send(200, b"[" + b" " * (40 << 20) + b"]")
        if kind == "500":
            return self.send(500, {"id": "internal", "message": "oops"})

        if path.startswith("/s3/"):
            # A presigned download: S3 refuses a second authentication.
            if auth:
                return self.send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
                                 "application/xml")
            if kind == "expired":
                return self.send(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                                 "application/xml")
            with open(urllib.parse.unquote(path[len("/s3"):]), "rb") as f:
                body = f.read()
            if kind == "truncate":
                body = body[: len(body) // 2]
            if kind == "reset":
                return self.reset(body)
            if kind == "trickle":
                return self.trickle(body, fault.get("pieces", 3), fault.get("seconds", 1))
            return self.send(200, body, "application/gzip")

        if auth != "Bearer " + s["token"]:
            return self.send(401, {"id": "unauthorized", "message": "Invalid credentials provided."})

        heroku = s.get("heroku", {})
        prefix = "/enterprise-accounts/" + heroku.get("account", "") + "/archives"
        if heroku and path.startswith(prefix):
            accept = self.headers.get("Accept", "")
            if heroku.get("require_variant") and "version=3.audit-trail" not in accept:
                return self.send(406, {"id": "variant_required",
                                       "message": "This endpoint needs Accept: application/vnd.heroku+json; version=3.audit-trail"})
            archives = [self.archive(a, kind) for a in heroku["archives"]]
            if path == prefix:
                body = json.dumps(archives).encode()
                return self.reset(body) if kind == "reset" else self.send(200, body)
            year, month = path[len(prefix) + 1:].split("/")
            for a in archives:
                if a["year"] == int(year) and a["month"] == month:
                    return self.send(200, a)
            return self.send(404, {"id": "not_found", "message": "no such archive"})

        if heroku and path == "/enterprise-accounts/" + heroku["account"] + "/events":
            return self.events(heroku, query, kind)
        if path == "/api/v2/organization/audit-trail":
            return self.audit_trail(s, query, kind)
        return self.send(404, {"id": "not_found", "message": path})

    def archive(self, a, kind):
        with open(a["file"], "rb") as f:
            body = f.read()
        checksum = a.get("checksum") or hashlib.sha256(body).hexdigest()
        if kind == "badsum":
            checksum = "0" * 64
        host = self.headers.get("Host")
        return {
            "checksum": checksum,
            "created_at": "2024-04-01T00:00:00Z",
            "month": "%02d" % a["month"],
            "size": a.get("size", len(body)),
            "url": f"http://{host}/s3{urllib.parse.quote(a['file'])}?X-Amz-Expires=600&X-Amz-Signature=abc",
            "year": a["year"],
        }

    def events(self, heroku, query, kind):
        """Heroku list paging: `Range: id ]LAST..; max=N`, 206 + Next-Range."""
        events = heroku.get("events", {}).get(query["day"][0], [])
        size = heroku.get("page_size", 1000)
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("id ]") and not heroku.get("stuck"):
            last = wanted[len("id ]"):].split("..")[0]
            start = next(i + 1 for i, e in enumerate(events) if e["id"] == last)
        page = events[start:start + size]
        body = json.dumps(page).encode()
        if kind == "reset":
            return self.reset(body)
        if start + size < len(events) or (heroku.get("stuck") and page):
            return self.send(206, body, headers={
                "Content-Range": f"id {page[0]['id']}..{page[-1]['id']}",
                "Next-Range": f"id ]{page[-1]['id']}..; max={size}"})
        return self.send(200, body)

    def audit_trail(self, s, query, kind):
        now = datetime.datetime.now(datetime.timezone.utc)
        kept = now - datetime.timedelta(days=14)
        def ts(e):
            return datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        events = [e for e in s["terraform"]["events"] if ts(e) >= kept]
        if "since" in query:
            since = datetime.datetime.fromisoformat(query["since"][0].replace("Z", "+00:00"))
            events = [e for e in events if ts(e) >= since]
        events.sort(key=ts, reverse=True)
        size = int(query.get("page[size]", ["1000"])[0])
        size = min(size, s["terraform"].get("page_size", size))
        number = int(query.get("page[number]", ["1"])[0])
        total_pages = max(1, (len(events) + size - 1) // size)
        page = events[(number - 1) * size: number * size]
        body = json.dumps({
            "data": page,
            "pagination": {
                "current_page": number,
                "prev_page": number - 1 if number > 1 else None,
                "next_page": number + 1 if number < total_pages or s["terraform"].get("endless") else None,
                "total_pages": total_pages,
                "total_count": len(events),
            },
        }).encode()
        if kind == "reset":
            return self.reset(body)
        return self.send(200, body, "application/vnd.api+json")

    def trickle(self, body, pieces, seconds):
        """Headers, then the body in `pieces` parts with a pause before each."""
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        size = -(-len(body) // pieces)
        for start in range(0, len(body), size):
            time.sleep(seconds)
            self.wfile.write(body[start:start + size])
            self.wfile.flush()

    def reset(self, body):
        """Headers for the whole body, half of it, then the connection drops."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
