#!/usr/bin/python3
"""A stand-in for a registry's blob CDN, for the integration tests.
Loopback only, Python standard library only.

    cdn.py --root REGISTRY_STORAGE_DIR --port-file PORTFILE
           --log REQUESTS.jsonl [--port 0]

GET|HEAD /blobs/sha256/<hex> answers with the bytes of
ROOT/docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data (the layout of
docker-registry's filesystem storage), Content-Type
application/octet-stream, Content-Length, and 404 when there is no such
blob. Anything else is 404. No authentication of any kind: a real CDN
URL is pre-signed; whatever credentials a client sends are a leak.

Every request is appended to --log as one JSON line, written and flushed
when the response has been sent:
    {"method": "GET", "path": "/blobs/sha256/...", "status": 200,
     "bytes": N, "headers": [["Host", "127.0.0.1:P"], ...]}
with ALL request headers in the order received (repeats kept), so a
test can check that no Authorization (or Cookie) header ever arrived.

The port (bound on 127.0.0.1, 0 = any free one) is written to
--port-file once the socket listens.
"""

import argparse
import http.server
import json
import os
import re
import sys
import threading

BLOB_RE = re.compile(r"^/blobs/sha256/([0-9a-f]{64})$")
LOG_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-cdn/1"

    def log_message(self, fmt, *args):  # the JSON log is enough
        pass

    def record(self, status, nbytes):
        line = json.dumps({
            "method": self.command,
            "path": self.path,
            "status": status,
            "bytes": nbytes,
            "headers": [[k, v] for k, v in self.headers.items()],
        })
        with LOG_LOCK:
            with open(self.server.logfile, "a") as f:
                f.write(line + "\n")
                f.flush()

    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            self.wfile.write(body)
            sent = len(body)
        self.wfile.flush()
        self.record(status, sent)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        m = BLOB_RE.match(path)
        data = None
        if m:
            h = m.group(1)
            fn = os.path.join(self.server.root, "docker", "registry", "v2",
                              "blobs", "sha256", h[:2], h, "data")
            try:
                with open(fn, "rb") as f:
                    data = f.read()
            except OSError:
                data = None
        if data is None:
            self.reply(404, b"not found\n", "text/plain")
            return
        self.reply(200, data, "application/octet-stream")

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    cfg = ap.parse_args()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.root = cfg.root
    srv.logfile = cfg.log
    open(cfg.log, "a").close()
    tmp = cfg.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, cfg.port_file)
    sys.stderr.write("cdn listening on 127.0.0.1:%d root=%s\n" %
                     (srv.server_address[1], cfg.root))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
