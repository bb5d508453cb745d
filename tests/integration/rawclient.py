#!/usr/bin/python3
"""Raw TCP clients for attacks a well-behaved HTTP client cannot make.
Loopback only; Python standard library only.

    rawclient.py slow HOST PORT [--interval S] [--max-seconds S] [--tls]
        Send a request head one byte every --interval seconds (default
        0.5) and never finish it.  Prints "closed-after SECONDS" when the
        server closes the connection, or "still-open SECONDS" when
        --max-seconds (default 30) pass first.  With --tls, the bytes go
        inside a TLS session (certificate not verified).

    rawclient.py silent HOST PORT [--max-seconds S]
        Connect and send nothing (for TLS listeners: no ClientHello).
        Prints "closed-after SECONDS" or "still-open SECONDS".

    rawclient.py hold HOST PORT N [--source ADDR] [--state FILE]
        Open N connections from ADDR (default 127.0.0.1), send nothing,
        and keep them open until killed.  Once all are made, writes FILE
        (atomically) as JSON {"open": K, "refused": R, "status": [...]}:
        K connections the server kept open, R it answered (the first
        line of its answer, e.g. "HTTP/1.1 503 ...") or closed within
        0.5 s.

    rawclient.py noread HOST PORT PATH N [--state FILE]
        Open N connections with tiny receive buffers, send "GET PATH" on
        each and never read the answers; keep them open until killed.
        Writes FILE as JSON {"sent": N} once every request is sent.

    rawclient.py pump HOST PORT PATH MIB
        Send "GET PATH", then up to MIB MiB of junk behind it as fast as
        the server takes it, giving up once it has taken nothing for 2 s.
        Prints "taken BYTES" (the junk the server's socket accepted).

    rawclient.py pipeline HOST PORT PATH... [--rcvbuf B] [--http10]
        Send a GET of each PATH in one write (the last one asks for
        "Connection: close"; with --http10, HTTP/1.0 requests without
        keep-alive), then read the answers in 512-byte pieces with the
        receive buffer set to B bytes (default: the system's) until the
        server closes.  Prints a line per answer, "STATUS LENGTH SHA256",
        then "eof" if the server closed the connection within 20 s, or
        "open" if it did not.

    rawclient.py flood HOST PORT N [--state FILE]
        Like hold, but without waiting to see whether the server answers
        each connection: {"open": K, "refused": R} where R counts only
        connections the kernel refused.
"""

import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import time

ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.oci.image.index.v1+json")


def loopback(host):
    if not host.startswith("127."):
        sys.exit("rawclient: loopback addresses only")


def wait_closed(sock, seconds):
    """True if the peer closes (EOF or reset) within seconds."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


def cmd_slow(a):
    head = (b"GET /v2/ HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\n" +
            b"X-Padding: " + b"a" * 4000 + b"\r\n\r\n")
    s = socket.create_connection((a.host, a.port), timeout=10)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    t0 = time.monotonic()
    s.setblocking(True)
    for i in range(len(head)):
        if time.monotonic() - t0 > a.max_seconds:
            print("still-open %.1f" % (time.monotonic() - t0))
            return
        try:
            s.sendall(head[i:i + 1])
        except OSError:
            print("closed-after %.1f" % (time.monotonic() - t0))
            return
        # A paced attack, not synchronisation: one byte per interval,
        # watching for the close in between.
        if wait_closed(s, a.interval):
            print("closed-after %.1f" % (time.monotonic() - t0))
            return
    print("head-complete %.1f" % (time.monotonic() - t0))


def cmd_silent(a):
    s = socket.create_connection((a.host, a.port), timeout=10)
    t0 = time.monotonic()
    if wait_closed(s, a.max_seconds):
        print("closed-after %.1f" % (time.monotonic() - t0))
    else:
        print("still-open %.1f" % (time.monotonic() - t0))


def write_state(path, obj):
    if not path:
        print(json.dumps(obj))
        sys.stdout.flush()
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def cmd_hold(a):
    socks, refused, status = [], 0, []
    for _ in range(a.n):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if a.source:
                loopback(a.source)
                s.bind((a.source, 0))
            s.settimeout(5)
            s.connect((a.host, a.port))
            socks.append(s)
        except OSError:
            refused += 1
    if a.cmd == "hold":
        # Which of them did the server answer or close at once?
        time.sleep(0.5)  # the server's reaction time, not a handshake
        kept = []
        for s in socks:
            s.setblocking(False)
            try:
                data = s.recv(4096)
                refused += 1
                status.append(data.split(b"\r\n", 1)[0].decode("latin-1")
                              if data else "closed")
                s.close()
            except BlockingIOError:
                kept.append(s)
            except OSError:
                refused += 1
                status.append("reset")
        socks = kept
    write_state(a.state, {"open": len(socks), "refused": refused,
                          "status": status})
    while True:
        time.sleep(3600)  # held until the test kills us


def cmd_noread(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((a.host, a.port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                   a.path).encode())
        socks.append(s)
    write_state(a.state, {"sent": len(socks)})
    while True:
        time.sleep(3600)  # held until the test kills us


def cmd_pump(a):
    s = socket.create_connection((a.host, a.port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % a.path).encode())
    junk = b"j" * 65536
    taken = 0
    s.settimeout(2)
    try:
        while taken < a.mib * 1024 * 1024:
            taken += s.send(junk)
    except (socket.timeout, OSError):
        pass
    print("taken %d" % taken)
    s.close()


def cmd_pipeline(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if a.rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.settimeout(20)
    s.connect((a.host, a.port))
    ver = "HTTP/1.0" if a.http10 else "HTTP/1.1"
    reqs = []
    for i, path in enumerate(a.paths):
        last = i == len(a.paths) - 1
        conn = "" if a.http10 else ("Connection: close\r\n" if last else "")
        reqs.append("GET %s %s\r\nHost: %s\r\nAccept: %s\r\n%s\r\n" %
                    (path, ver, a.host, ACCEPT, conn))
    s.sendall("".join(reqs).encode())
    data, state = b"", "eof"
    while True:
        try:
            chunk = s.recv(512)
        except socket.timeout:
            state = "open"
            break
        if not chunk:
            break
        data += chunk
    s.close()
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            print("junk %d" % len(data))
            break
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        body, data = rest[:length], rest[length:]
        print("%s %d %s" % (status, len(body), hashlib.sha256(body).hexdigest()))
    print(state)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("slow")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=30)
    p.add_argument("--tls", action="store_true")
    p = sub.add_parser("silent")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--max-seconds", type=float, default=30)
    p = sub.add_parser("pump")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("mib", type=int)
    p = sub.add_parser("noread")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("n", type=int)
    p.add_argument("--state")
    p = sub.add_parser("pipeline")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("paths", nargs="+")
    p.add_argument("--rcvbuf", type=int, default=0)
    p.add_argument("--http10", action="store_true")
    for name in ("hold", "flood"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("n", type=int)
        p.add_argument("--source")
        p.add_argument("--state")
    a = ap.parse_args()
    loopback(a.host)
    {"slow": cmd_slow, "silent": cmd_silent, "hold": cmd_hold,
     "flood": cmd_hold, "noread": cmd_noread, "pump": cmd_pump,
     "pipeline": cmd_pipeline}[a.cmd](a)


if __name__ == "__main__":
    main()
