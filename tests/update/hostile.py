"""An instrumented, optionally hostile HTTP/1.1 server on 127.0.0.1.

It serves a publisher repo like any static web server (keep-alive, Range
requests answered with 206) and logs every request: method, path, Range
header, status and the body bytes it wrote.  Rules per path make it hostile:

  Rule(body=...)          serve these bytes instead of the file
  Rule(status=404)        always answer this status
  Rule(fail=[503, 503])   answer these statuses first, then serve normally
  Rule(endless=True)      after the body, send junk forever (no length)
  Rule(stall=True)        send the headers and the first chunk, then nothing
  Rule(bps=10)            trickle: at most this many bytes per second
  Rule(bps=..., bps_requests=1)   throttle only the first request(s)
  Rule(cut_after=N)       first response: announce the full length, send N
                          bytes, close the connection
  Rule(no_range=True)     ignore Range headers (always 200 and the whole file)

set(path, rule) applies to one path, set_prefix(prefix, rule) to a subtree.

Everything is bounded: a response never lasts longer than MAX_RESPONSE_SEC
and stop() ends all of them.
"""

import http.server
import os
import socketserver
import threading
import time
import urllib.parse

MAX_RESPONSE_SEC = 90
ENDLESS_CAP = 256 * 1024 * 1024


class Rule:
    def __init__(self, body=None, status=None, fail=(), endless=False, bps=None,
                 bps_requests=None, chunk=16384, cut_after=None, no_range=False, stall=False):
        self.body = body
        self.status = status
        self.fail = list(fail)
        self.endless = endless
        self.bps = bps
        self.bps_requests = bps_requests
        self.chunk = chunk
        self.cut_after = cut_after
        self.no_range = no_range
        self.stall = stall


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-test/1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.owner._handle(self, head=False)

    def do_HEAD(self):
        self.server.owner._handle(self, head=True)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class HostileServer:
    def __init__(self, docroot, logfile=None):
        self.docroot = os.path.realpath(docroot)
        self.logfile = logfile
        self.rules = {}
        self.prefix_rules = []
        self.log = []
        self.counts = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def start(self):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)
            self.httpd = None

    # ---- configuration and inspection ----

    def set(self, path, rule):
        with self.lock:
            self.rules["/" + path.lstrip("/")] = rule

    def set_prefix(self, prefix, rule):
        """RULE for every path under PREFIX (exact rules win)."""
        with self.lock:
            self.prefix_rules.append(("/" + prefix.lstrip("/"), rule))

    def clear(self):
        with self.lock:
            self.rules.clear()
            self.prefix_rules.clear()
            self.log.clear()
            self.counts.clear()

    def requests(self, path=None):
        with self.lock:
            entries = list(self.log)
        if path is not None:
            path = "/" + path.lstrip("/")
            entries = [e for e in entries if e["path"] == path]
        return entries

    # ---- serving ----

    def _record(self, entry):
        if self.logfile:
            with open(self.logfile, "a") as f:
                f.write("%(method)s %(path)s %(status)s sent=%(sent)s range=%(range)s\n" % entry)

    def _file(self, path):
        full = os.path.realpath(os.path.join(self.docroot, path.lstrip("/")))
        if not full.startswith(self.docroot + os.sep) or not os.path.isfile(full):
            return None
        with open(full, "rb") as f:
            return f.read()

    def _handle(self, h, head):
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        with self.lock:
            n = self.counts[path] = self.counts.get(path, 0) + 1
            rule = self.rules.get(path)
            if rule is None:
                rule = next((r for p, r in self.prefix_rules if path.startswith(p)), None)
        entry = {"method": h.command, "path": path, "range": h.headers.get("Range"),
                 "status": None, "sent": 0, "n": n, "start": time.monotonic(), "end": None}
        with self.lock:
            self.log.append(entry)  # listed at once; filled in as it goes
        try:
            self._respond(h, head, path, rule, n, entry)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            h.close_connection = True
        finally:
            entry["end"] = time.monotonic()
            self._record(entry)

    def _simple(self, h, status, entry, head):
        body = ("%d\n" % status).encode()
        entry["status"] = status
        h.send_response(status)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)
            entry["sent"] = len(body)

    def _respond(self, h, head, path, rule, n, entry):
        if rule is not None and n <= len(rule.fail):
            return self._simple(h, rule.fail[n - 1], entry, head)
        if rule is not None and rule.status is not None:
            return self._simple(h, rule.status, entry, head)
        data = rule.body if rule is not None and rule.body is not None else self._file(path)
        if data is None:
            return self._simple(h, 404, entry, head)
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and not (rule and (rule.endless or rule.no_range)):
            first = rng[len("bytes="):].split(",")[0].split("-")[0]
            if first.isdigit():
                start = int(first)
                if start >= len(data):
                    return self._simple(h, 416, entry, head)
        bps = rule.bps if rule is not None else None
        if bps and rule.bps_requests is not None and n > rule.bps_requests + len(rule.fail):
            bps = None
        if rule is not None and rule.stall:
            entry["status"] = 200
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(data) + 1024 * 1024))
            h.end_headers()
            h.wfile.write(data[:rule.chunk])
            h.wfile.flush()
            entry["sent"] = min(len(data), rule.chunk)
            self.stopping.wait(MAX_RESPONSE_SEC)
            h.close_connection = True
            return
        if rule is not None and rule.endless:
            entry["status"] = 200
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            if head:
                return
            self._write(h, data, bps, rule.chunk, entry)
            junk = b"\0" * 65536
            deadline = time.monotonic() + MAX_RESPONSE_SEC
            while (not self.stopping.is_set() and entry["sent"] < ENDLESS_CAP
                   and time.monotonic() < deadline):
                self._write(h, junk, bps, rule.chunk, entry)
            return
        status = 206 if start else 200
        entry["status"] = status
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data) - start))
        h.send_header("Accept-Ranges", "bytes")
        if start:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        h.end_headers()
        if head:
            return
        body = data[start:]
        if rule is not None and rule.cut_after is not None and n == len(rule.fail) + 1:
            body = body[:rule.cut_after]
            h.close_connection = True
        self._write(h, body, bps, rule.chunk if rule else 65536, entry)

    def _write(self, h, data, bps, chunk, entry):
        if not bps:
            view = memoryview(data)
            for off in range(0, len(view), 65536):
                if self.stopping.is_set():
                    raise BrokenPipeError("server stopping")
                h.wfile.write(view[off:off + 65536])
                entry["sent"] += len(view[off:off + 65536])
            return
        # throttled: small pieces at a steady rate
        step = max(1, min(chunk, bps // 10 or 1))
        t0 = time.monotonic()
        sent0 = entry["sent"]
        deadline = t0 + MAX_RESPONSE_SEC
        for off in range(0, len(data), step):
            if self.stopping.is_set() or time.monotonic() > deadline:
                raise BrokenPipeError("server stopping")
            piece = data[off:off + step]
            h.wfile.write(piece)
            h.wfile.flush()
            entry["sent"] += len(piece)
            due = t0 + (entry["sent"] - sent0) / bps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
