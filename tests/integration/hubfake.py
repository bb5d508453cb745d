#!/usr/bin/python3
"""A small scriptable registry (and token service) for the Docker Hub
behaviours a real docker-registry does not have: token realms on another
host, plain-text 429s, RateLimit-* headers, bursts of 503s. Python
standard library only; loopback only (--host must be in 127.0.0.0/8).

    hubfake.py --info-file INFO [--host 127.0.0.1] [--port 0]
               [--seed S] [--routes FILE]
               [--auth-realm URL --auth-token T [--auth-service S]
                [--auth-scope SCOPE]]
               [--issue-token T] [--token-user U --token-password P]
               [--tls-cert PEM --tls-key PEM]

Registry: it serves one generated image (an OCI manifest, a config and a
2000-byte layer, from --seed) under every repository name and every tag:

    GET  /v2/                              200 {}
    GET|HEAD /v2/<name>/manifests/<tag>    the manifest
    GET|HEAD /v2/<name>/manifests/<digest> the manifest (404 otherwise)
    GET|HEAD /v2/<name>/blobs/<digest>     the config or the layer (404
                                           otherwise)

With --auth-realm, every /v2/ request without "Authorization: Bearer T"
(T = --auth-token) gets 401 and
    WWW-Authenticate: Bearer realm="URL",service="S",scope="SCOPE"
(SCOPE defaults to repository:<name>:pull).

Token service: GET /token answers {"token": T, "access_token": T,
"expires_in": 300} with T = --issue-token (default "hubfake-token").
With --token-user/--token-password it wants that Basic auth (else 401).

Routes script the answers per path (the path without its query string,
any method): a JSON object {PATH: [ANSWER, ...]}; the Nth request for
PATH gets the Nth ANSWER, the last one repeating. An ANSWER is

    {"serve": true, "headers": {...}}   the normal answer, plus headers
    ... "delay": SECONDS                (either kind) answer that late
    {"status": N, "headers": {...}, "body": "text",
     "content_type": "text/plain"}      a canned answer (body default
                                        empty, content type default
                                        application/json)
    ... "header_bytes": N               (either kind) N bytes more of
                                        junk header fields (X-Pad-I)
    ... "header_count": N               (either kind) N more tiny fields

Header values may hold any code point up to U+00FF: they are sent as
those bytes (latin-1), so an answer can carry bytes >= 0x80.

Routes are checked after the auth check. Load them with --routes FILE or
replace them (and reset their positions) with PUT /_routes (JSON body).

Control (not logged, no auth):
    GET /_count?path=P[&method=M]   requests for path P (of method M, or
                                    of any method)
    GET /_requests                  every request, as a JSON list

Every other request is logged on stderr, before its answer is sent, as
    hubfake-req {"method", "path", "status", "authorization", "time"}
("authorization" is the Authorization header or null, "time" the Unix
time in seconds, microsecond resolution), so a test may read the log as
soon as its client has an answer.

When listening, INFO (JSON) is written atomically: {"host", "port",
"manifest": {"digest", "mediaType", "size"}, "config": {...},
"layer": {...}}.
"""

import argparse
import base64
import hashlib
import http.server
import ipaddress
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

MANIFEST_RE = re.compile(r"/v2/(.+)/manifests/([^/]+)")
BLOB_RE = re.compile(r"/v2/(.+)/blobs/([^/]+)")

LOCK = threading.Lock()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class State:
    def __init__(self, a):
        self.a = a
        rng = random.Random(a.seed)
        self.layer = rng.randbytes(2000)
        self.config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(self.layer)]},
            "config": {}, "comment": "hubfake %s" % a.seed},
            separators=(",", ":")).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": sha(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": MT_LAYER, "digest": sha(self.layer),
                        "size": len(self.layer)}]},
            separators=(",", ":")).encode()
        self.blobs = {sha(self.layer): (MT_LAYER, self.layer),
                      sha(self.config): (MT_CONFIG, self.config)}
        self.routes = {}
        self.pos = {}
        self.requests = []

    def set_routes(self, routes):
        if not isinstance(routes, dict) or not all(
                isinstance(v, list) and v for v in routes.values()):
            raise ValueError("routes: want {PATH: [ANSWER, ...]}")
        with LOCK:
            self.routes = routes
            self.pos = {}

    def next_answer(self, path):
        with LOCK:
            seq = self.routes.get(path)
            if seq is None:
                return None
            n = self.pos.get(path, 0)
            self.pos[path] = n + 1
            return seq[min(n, len(seq) - 1)]

    def info(self, host, port):
        def d(mt, data):
            return {"digest": sha(data), "mediaType": mt, "size": len(data)}
        return {"host": host, "port": port,
                "manifest": d(MT_MANIFEST, self.manifest),
                "config": d(MT_CONFIG, self.config),
                "layer": d(MT_LAYER, self.layer)}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "regmirror-test-hubfake/1"

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    # -- plumbing ---------------------------------------------------------

    def record(self, status):
        path = urllib.parse.urlsplit(self.path).path
        rec = {"method": self.command, "path": self.path, "status": status,
               "authorization": self.headers.get("Authorization"),
               "time": round(time.time(), 6)}
        with LOCK:
            self.st.requests.append(dict(rec, bare=path))
            sys.stderr.write("hubfake-req " + json.dumps(rec) + "\n")
            sys.stderr.flush()

    def send(self, status, body=b"", ctype="application/json", extra=None,
             length=None, pad=None):
        self.record(status)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length",
                         str(len(body) if length is None else length))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        self.pad_headers(pad or {})
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def pad_headers(self, ans):
        """Junk header fields, written straight to the socket (a hostile
        upstream's unbounded head)."""
        n = int(ans.get("header_bytes") or 0)
        i = 0
        if n == 0 and not ans.get("header_count"):
            return
        try:
            self.flush_headers()
            while n > 0:
                line = ("X-Pad-%d: %s\r\n" % (i, "a" * min(n, 8000)))
                self.wfile.write(line.encode())
                n -= len(line)
                i += 1
            for k in range(int(ans.get("header_count") or 0)):
                self.wfile.write(b"X-C%d: 1\r\n" % k)
        except OSError:
            pass

    def oci_error(self, status, code, msg, extra=None):
        body = json.dumps({"errors": [{"code": code, "message": msg,
                                       "detail": None}]}).encode()
        self.send(status, body, extra=extra)

    # -- control ----------------------------------------------------------

    def control(self, u):
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/_count" and self.command == "GET":
            path = q.get("path", [""])[0]
            method = q.get("method", [None])[0]
            with LOCK:
                n = sum(1 for r in self.st.requests if r["bare"] == path and
                        (method is None or r["method"] == method))
            self.raw(200, str(n).encode(), "text/plain")
        elif u.path == "/_requests" and self.command == "GET":
            with LOCK:
                body = json.dumps(self.st.requests).encode()
            self.raw(200, body, "application/json")
        elif u.path == "/_routes" and self.command == "PUT":
            n = int(self.headers.get("Content-Length") or 0)
            try:
                self.st.set_routes(json.loads(self.rfile.read(n)))
            except ValueError as e:
                self.raw(400, str(e).encode(), "text/plain")
                return
            self.raw(204, b"", None)
        else:
            self.raw(404, b"no such control\n", "text/plain")

    def raw(self, status, body, ctype):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- the registry and the token service ------------------------------

    def do_PUT(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path.startswith("/_"):
            self.control(u)
            return
        self.oci_error(405, "UNSUPPORTED", "read-only")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        if path.startswith("/_"):
            self.control(u)
            return
        if path == "/token":
            self.token()
            return
        if not (path == "/v2" or path.startswith("/v2/")):
            self.oci_error(404, "NOT_FOUND", "not a registry path")
            return
        a = self.server.args
        if a.auth_realm and self.headers.get("Authorization") != \
                "Bearer " + a.auth_token:
            m = MANIFEST_RE.fullmatch(path) or BLOB_RE.fullmatch(path)
            scope = a.auth_scope or (
                "repository:%s:pull" % m.group(1) if m else None)
            chal = 'Bearer realm="%s"' % a.auth_realm
            if a.auth_service:
                chal += ',service="%s"' % a.auth_service
            if scope:
                chal += ',scope="%s"' % scope
            self.oci_error(401, "UNAUTHORIZED", "authentication required",
                           {"WWW-Authenticate": chal})
            return
        ans = self.st.next_answer(path)
        extra = {}
        if ans is not None:
            if ans.get("delay"):
                time.sleep(float(ans["delay"]))
            extra = dict(ans.get("headers") or {})
            if not ans.get("serve"):
                self.send(int(ans["status"]),
                          ans.get("body", "").encode("latin-1"),
                          ans.get("content_type", "application/json"),
                          extra, pad=ans)
                return
        self.serve(path, extra, ans or {})

    def serve(self, path, extra, ans):
        st = self.st
        if path in ("/v2", "/v2/"):
            self.send(200, b"{}", extra=extra, pad=ans)
            return
        m = MANIFEST_RE.fullmatch(path)
        if m:
            ref = m.group(2)
            if ref.startswith("sha256:") and ref != sha(st.manifest):
                self.oci_error(404, "MANIFEST_UNKNOWN", "no such manifest")
                return
            extra["Docker-Content-Digest"] = sha(st.manifest)
            self.send(200, st.manifest, MT_MANIFEST, extra, pad=ans)
            return
        m = BLOB_RE.fullmatch(path)
        if m and m.group(2) in st.blobs:
            mt, data = st.blobs[m.group(2)]
            extra["Docker-Content-Digest"] = m.group(2)
            self.send(200, data, "application/octet-stream", extra,
                      pad=ans)
            return
        self.oci_error(404, "BLOB_UNKNOWN" if m else "NAME_UNKNOWN",
                       "unknown")

    def token(self):
        a = self.server.args
        if a.token_user is not None:
            want = "Basic " + base64.b64encode(
                ("%s:%s" % (a.token_user, a.token_password)).encode()
            ).decode()
            if self.headers.get("Authorization") != want:
                self.send(401, b'{"details":"bad credentials"}',
                          extra={"WWW-Authenticate":
                                 'Basic realm="hubfake"'})
                return
        body = json.dumps({"token": a.issue_token,
                           "access_token": a.issue_token,
                           "expires_in": 300}).encode()
        self.send(200, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--info-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", default="hubfake")
    ap.add_argument("--routes")
    ap.add_argument("--auth-realm")
    ap.add_argument("--auth-service")
    ap.add_argument("--auth-scope")
    ap.add_argument("--auth-token", default="hubfake-token")
    ap.add_argument("--issue-token", default="hubfake-token")
    ap.add_argument("--token-user")
    ap.add_argument("--token-password")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM chain")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        ap.error("--host must be a loopback address")
    if (a.token_user is None) != (a.token_password is None):
        ap.error("--token-user and --token-password go together")

    state = State(a)
    if a.routes:
        with open(a.routes) as f:
            state.set_routes(json.load(f))

    http.server.ThreadingHTTPServer.allow_reuse_address = False
    srv = http.server.ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.state = state
    srv.args = a
    if a.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    tmp = a.info_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state.info(a.host, port), f)
    os.rename(tmp, a.info_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
