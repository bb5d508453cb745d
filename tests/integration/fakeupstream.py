#!/usr/bin/python3
"""A tiny scriptable registry upstream for faults a real registry cannot
produce. Loopback only; Python standard library only.

    fakeupstream.py --info-file INFO [--port 0] [--mode MODE]
                    [--repo NAME] [--also-repo NAME]... [--tag TAG]
                    [--blob-size BYTES]
                    [--seed S] [--layout DIR] [--stall-seconds N]
                    [--slow-rate BYTES_PER_S] [--rate BYTES_PER_S]
    fakeupstream.py --info-file INFO --proxy URL --fault-digest D
                    [--mode ok|gate] [--stall-seconds N]

It serves the pull API for one image: by default it makes one (an OCI
manifest, a config blob and one layer of --blob-size random bytes, from
--seed); with --layout it serves every manifest and blob of an OCI image
layout (such as mkimage.py writes), tags taken from the ref.name
annotations of its index.json.

    GET  /v2/                          200 {}
    GET|HEAD /v2/<repo>/manifests/<tag|digest>
    GET|HEAD /v2/<repo>/blobs/<digest>
    GET  /v2/<repo>/tags/list

Faults apply to GETs of the fault blob (the largest blob: the layer;
override with --fault-digest). Headers are always the correct ones
(Content-Length of the real size, Docker-Content-Digest of the real
digest); only the body misbehaves:

    ok        the exact body
    corrupt   the full-length body with one byte flipped in the middle
    truncate  half the body, then a clean close (FIN)
    reset     half the body, then an RST (SO_LINGER 0)
    stall     half the body, then nothing for --stall-seconds, then close
    status-N  answer with HTTP status N (e.g. 429, 503) and an OCI error
              body; 429 and 503 carry "Retry-After: 1"
    slow      the exact body, paced at --slow-rate bytes per second
              (default 65536)
    gate      half the body, then nothing until the mode is changed (PUT
              /_mode: the release), then the rest; a body not released
              within --stall-seconds is cut there instead (the connection
              closed).  "held" is logged once the half is sent.

Manifest faults apply to every GET and HEAD of /v2/<repo>/manifests/<ref>
(by tag or digest); blobs are served normally in these modes:

    manifest-status-N  HTTP status N and an OCI error body (Retry-After: 1
                       on 429 and 503)
    manifest-hang      read the request, answer nothing until the client
                       closes (or --stall-seconds pass), then close

With --proxy URL there is no image of its own: every GET and HEAD is
forwarded to the registry at URL (path, query and headers) and answered
with that registry's status, headers and body, so the content and its
headers are a real registry's.  Only the gate mode applies, to GETs of
--fault-digest (required) on the way through; a stall a real registry
cannot make, in front of one.

--rate N paces every blob body that is sent in full (the mode's own
behaviour otherwise unchanged) at N bytes per second; 0 (the default) is
full speed.

Control (not part of the registry API, for the test script):

    GET  /_mode                        the current mode
    PUT  /_mode?mode=M                 change the mode
    GET  /_count?path=P[&method=GET]   how many requests of that method
                                       (default GET) were made for path P
                                       (path without the query string)

Every request is logged on stderr as
    fakeupstream "METHOD URI" STATUS mode=MODE sent=BYTES
(control requests excluded), so a test can grep it as well.

When listening, INFO (JSON) is written atomically:
    {"port", "repo", "tag", "manifest": {"digest","mediaType","size"},
     "config": {...}, "blob": {...}, "fault_digest"}
where blob is the fault blob.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MODES = ("ok", "corrupt", "truncate", "reset", "stall", "slow",
         "manifest-hang", "gate")
# Not copied between the registry and the client of --proxy.
HOP_HEADERS = ("connection", "keep-alive", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade", "host")
PROXY_CHUNK = 65536

LOG_LOCK = threading.Lock()


def paced_write(wfile, data, rate):
    """Write data at about rate bytes per second, in tenths of a
    second's worth; False when the peer went away."""
    chunk = max(1024, rate // 10)
    t0 = time.monotonic()
    off = 0
    try:
        while off < len(data):
            n = min(chunk, len(data) - off)
            wfile.write(data[off:off + n])
            wfile.flush()
            off += n
            due = t0 + off / rate
            d = due - time.monotonic()
            if d > 0 and off < len(data):
                time.sleep(d)
    except OSError:
        return False
    return True


def log(msg):
    with LOG_LOCK:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Store:
    """Blobs and manifests by digest, and tags."""

    def __init__(self):
        self.blobs = {}       # digest -> bytes
        self.manifests = {}   # digest -> (media type, bytes)
        self.tags = {}        # tag -> digest

    def generated(self, seed, size, tag):
        rng = random.Random(seed)
        layer = rng.randbytes(size)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
            "config": {}}, separators=(",", ":")).encode()
        self.blobs[sha(layer)] = layer
        self.blobs[sha(config)] = config
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": sha(config),
                       "size": len(config)},
            "layers": [{"mediaType": MT_LAYER, "digest": sha(layer),
                        "size": len(layer)}]},
            separators=(",", ":")).encode()
        self.manifests[sha(manifest)] = (MT_MANIFEST, manifest)
        self.tags[tag] = sha(manifest)

    def layout(self, path):
        bdir = os.path.join(path, "blobs", "sha256")
        for name in os.listdir(bdir):
            with open(os.path.join(bdir, name), "rb") as f:
                data = f.read()
            self.blobs["sha256:" + name] = data
        with open(os.path.join(path, "index.json")) as f:
            index = json.load(f)
        todo = list(index["manifests"])
        for d in todo:
            ref = d.get("annotations", {}).get(
                "org.opencontainers.image.ref.name")
            if ref:
                self.tags[ref] = d["digest"]
        # Every descriptor reachable from index.json that is a manifest
        # or an index is served as a manifest.
        while todo:
            d = todo.pop()
            data = self.blobs[d["digest"]]
            self.manifests[d["digest"]] = (d["mediaType"], data)
            doc = json.loads(data)
            todo.extend(doc.get("manifests", []))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "regmirror-test-fakeupstream/1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.dead = False

    def finish(self):
        if self.dead:
            return
        try:
            super().finish()
        except OSError:
            pass

    def access(self, status, sent):
        log('fakeupstream "%s %s" %d mode=%s sent=%d' %
            (self.command, self.path, status, self.server.mode, sent))

    def count(self, path):
        with self.server.lock:
            k = (self.command, path)
            self.server.counts[k] = self.server.counts.get(k, 0) + 1

    def reply(self, status, body, ctype="application/json", extra=None,
              paced=0):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            if paced:
                if not paced_write(self.wfile, body, paced):
                    self.close_connection = True
                    self.access(status, -1)
                    return
            else:
                self.wfile.write(body)
            sent = len(body)
        self.access(status, sent)

    def oci_error(self, status, code, msg, extra=None):
        body = json.dumps({"errors": [{"code": code, "message": msg}]})
        self.reply(status, body.encode(), extra=extra)

    def control(self, u):
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/_count":
            method = q.get("method", ["GET"])[0]
            path = q.get("path", [""])[0]
            with self.server.lock:
                n = self.server.counts.get((method, path), 0)
            body = b"%d\n" % n
        elif u.path == "/_mode" and self.command == "PUT":
            mode = q.get("mode", [""])[0]
            if not valid_mode(mode):
                body = b"bad mode\n"
                self.send_response(400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.server.mode = mode
            body = (mode + "\n").encode()
        elif u.path == "/_mode":
            body = (self.server.mode + "\n").encode()
        else:
            body = b"unknown control\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if u.path.startswith("/_"):
            self.control(u)
            return
        self.count(u.path)
        self.oci_error(405, "UNSUPPORTED", "read-only fake upstream")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path.startswith("/_"):
            self.control(u)
            return
        self.count(u.path)
        if self.server.proxy is not None:
            self.forward(u)
            return
        st = self.server.store
        if u.path == "/v2/" or u.path == "/v2":
            self.reply(200, b"{}")
            return
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", u.path)
        t = re.fullmatch(r"/v2/(.+)/tags/list", u.path)
        repo = (m or t).group(1) if (m or t) else None
        if repo is None or repo not in self.server.repos:
            self.oci_error(404, "NAME_UNKNOWN", "repository name not known")
            return
        if t:
            body = json.dumps({"name": repo,
                               "tags": sorted(st.tags)}).encode()
            self.reply(200, body)
            return
        kind, ref = m.group(2), m.group(3)
        if kind == "manifests" and self.server.mode.startswith("manifest-"):
            self.manifest_fault()
            return
        if kind == "manifests":
            digest = st.tags.get(ref, ref)
            if digest not in st.manifests:
                self.oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
            mt, data = st.manifests[digest]
            self.reply(200, data, mt, {"Docker-Content-Digest": digest})
            return
        if ref not in st.blobs:
            self.oci_error(404, "BLOB_UNKNOWN", "blob unknown")
            return
        data = st.blobs[ref]
        if ref == self.server.fault_digest and self.command == "GET":
            self.faulty_blob(ref, data)
            return
        self.reply(200, data, "application/octet-stream",
                   {"Docker-Content-Digest": ref}, paced=self.server.rate)

    def manifest_fault(self):
        mode = self.server.mode
        if mode == "manifest-hang":
            log('fakeupstream "%s %s" hang mode=%s' %
                (self.command, self.path, mode))
            # Answer nothing: wait for the client to give up (EOF) or for
            # --stall-seconds to pass.
            self.close_connection = True
            self.connection.settimeout(self.server.stall_seconds)
            try:
                while self.connection.recv(4096):
                    pass
            except OSError:
                pass
            return
        code = int(mode[len("manifest-status-"):])
        extra = {"Retry-After": "1"} if code in (429, 503) else None
        self.oci_error(code, "TOOMANYREQUESTS" if code == 429
                       else "UNAVAILABLE", "fault injected", extra)

    def faulty_blob(self, digest, data):
        mode = self.server.mode
        if mode.startswith("status-"):
            code = int(mode[len("status-"):])
            extra = {"Retry-After": "1"} if code in (429, 503) else None
            self.oci_error(code, "TOOMANYREQUESTS" if code == 429
                           else "UNAVAILABLE", "fault injected", extra)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", digest)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        half = len(data) // 2
        if mode == "ok" or mode.startswith("manifest-"):
            if self.server.rate:
                if not paced_write(self.wfile, data, self.server.rate):
                    self.close_connection = True
                    self.access(200, -1)
                    return
            else:
                self.wfile.write(data)
            self.access(200, len(data))
        elif mode == "slow":
            if not paced_write(self.wfile, data, self.server.slow_rate):
                self.close_connection = True
                self.access(200, -1)
                return
            self.access(200, len(data))
        elif mode == "corrupt":
            bad = bytearray(data)
            bad[half] ^= 0xff
            self.wfile.write(bytes(bad))
            self.access(200, len(data))
        elif mode == "truncate":
            self.wfile.write(data[:half])
            self.access(200, half)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "reset":
            self.wfile.write(data[:half])
            self.access(200, half)
            self.close_connection = True
            self.dead = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        elif mode == "gate":
            self.wfile.write(data[:half])
            self.wfile.flush()
            if not self.gate_hold(half):
                return
            self.wfile.write(data[half:])
            self.access(200, len(data))
        elif mode == "stall":
            self.wfile.write(data[:half])
            self.access(200, half)
            # Hold the connection until the client gives up or time
            # passes; the client closing shows as readable EOF.
            self.connection.settimeout(self.server.stall_seconds)
            try:
                self.connection.recv(1)
            except OSError:
                pass
            self.close_connection = True
        else:
            raise AssertionError(mode)

    def gate_hold(self, sent):
        """gate: hold the body after sent bytes until the mode changes
        (True) or --stall-seconds pass (False: the connection is closed,
        the body cut)."""
        log('fakeupstream "%s %s" held mode=gate sent=%d' %
            (self.command, self.path, sent))
        end = time.monotonic() + self.server.stall_seconds
        while self.server.mode == "gate":
            if time.monotonic() >= end:
                self.access(200, sent)
                self.close_connection = True
                return False
            time.sleep(0.02)
        return True

    def forward(self, u):
        """--proxy: the request to the registry, its answer back (the
        body held halfway when it is the gated blob)."""
        up = self.server.proxy
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True,
                        skip_accept_encoding=True)
        conn.putheader("Host", up.netloc)
        for k, v in self.headers.items():
            if k.lower() not in HOP_HEADERS:
                conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        headers = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_HEADERS]
        length = resp.getheader("Content-Length")
        body = None
        if self.command != "HEAD" and length is None:
            body = resp.read()      # chunked: sent with a length
            headers.append(("Content-Length", str(len(body))))
        self.send_response_only(resp.status, resp.reason)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        sent = 0
        if body is not None:
            self.wfile.write(body)
            sent = len(body)
        elif self.command != "HEAD":
            total = int(length)
            gated = (self.command == "GET" and resp.status == 200 and
                     self.server.mode == "gate" and
                     u.path.endswith("/blobs/" + self.server.fault_digest))
            hold_at = total // 2 if gated else -1
            while sent < total:
                if sent == hold_at:
                    self.wfile.flush()
                    if not self.gate_hold(sent):
                        conn.close()
                        return
                n = PROXY_CHUNK if hold_at <= sent else min(
                    PROXY_CHUNK, hold_at - sent)
                data = resp.read(min(n, total - sent))
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
        conn.close()
        self.access(resp.status, sent)


def valid_mode(mode):
    if mode in MODES:
        return True
    m = re.fullmatch(r"(manifest-)?status-([1-5][0-9][0-9])", mode)
    return m is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--info-file", required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--repo", default="fault/blob")
    ap.add_argument("--also-repo", action="append", default=[],
                    help="another repository holding the same image")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--blob-size", type=int, default=4 << 20)
    ap.add_argument("--seed", default="fakeupstream")
    ap.add_argument("--layout")
    ap.add_argument("--fault-digest")
    ap.add_argument("--stall-seconds", type=float, default=30)
    ap.add_argument("--slow-rate", type=int, default=65536)
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--proxy", help="forward to the registry at this URL")
    a = ap.parse_args()
    if not valid_mode(a.mode):
        ap.error("bad --mode %r" % a.mode)
    if a.proxy:
        proxy_main(a)
        return

    store = Store()
    if a.layout:
        store.layout(a.layout)
    else:
        store.generated(a.seed, a.blob_size, a.tag)
    fault = a.fault_digest or max(store.blobs,
                                  key=lambda d: len(store.blobs[d]))
    mdigest = store.tags.get(a.tag) or next(iter(store.manifests))
    mtype, mdata = store.manifests[mdigest]
    config = None
    doc = json.loads(mdata)
    if "config" in doc:
        config = doc["config"]

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.store = store
    srv.mode = a.mode
    srv.repo = a.repo
    srv.repos = set([a.repo] + a.also_repo)
    srv.fault_digest = fault
    srv.stall_seconds = a.stall_seconds
    srv.slow_rate = max(1, a.slow_rate)
    srv.rate = max(0, a.rate)
    srv.lock = threading.Lock()
    srv.counts = {}
    srv.proxy = None
    info = {
        "port": srv.server_address[1],
        "repo": a.repo,
        "tag": a.tag,
        "manifest": {"digest": mdigest, "mediaType": mtype,
                     "size": len(mdata)},
        "config": config,
        "blob": {"digest": fault, "mediaType": MT_LAYER,
                 "size": len(store.blobs[fault])},
        "fault_digest": fault,
    }
    tmp = a.info_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, a.info_file)
    log("fakeupstream listening on 127.0.0.1:%d mode=%s repo=%s blob=%s" %
        (srv.server_address[1], a.mode, a.repo, fault))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def proxy_main(a):
    """--proxy: a gate in front of a real registry."""
    up = urllib.parse.urlsplit(a.proxy)
    if (up.scheme != "http" or not up.port or
            not (up.hostname or "").startswith("127.")):
        sys.exit("--proxy wants http://127.x.y.z:PORT (loopback only)")
    if not a.fault_digest:
        sys.exit("--proxy needs --fault-digest")
    if a.mode not in ("ok", "gate"):
        sys.exit("--proxy: only the ok and gate modes")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.proxy = up
    srv.mode = a.mode
    srv.fault_digest = a.fault_digest
    srv.stall_seconds = a.stall_seconds
    srv.lock = threading.Lock()
    srv.counts = {}
    info = {"port": srv.server_address[1], "proxy": a.proxy,
            "fault_digest": a.fault_digest}
    tmp = a.info_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, a.info_file)
    log("fakeupstream listening on 127.0.0.1:%d mode=%s proxy=%s blob=%s" %
        (srv.server_address[1], a.mode, a.proxy, a.fault_digest))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
