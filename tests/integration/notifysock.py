#!/usr/bin/python3
"""The systemd side of sd_notify(3), for tests: a unix datagram socket
that a test points NOTIFY_SOCKET at.  Python standard library only.

    notifysock.py --socket PATH --out FILE [--probe URL] [--log FILE]
    notifysock.py --send PATH MESSAGE

Every datagram received becomes one line of FILE (flushed at once): the
receive time (seconds since the epoch, as bash's EPOCHREALTIME) and the
datagram's KEY=VALUE assignments, tab-separated:

    1764628172.123456<TAB>READY=1<TAB>STATUS=serving with 2 workers

When a datagram carries READY=1, the line after it records, at that
moment, whether --log FILE already holds "listening on" (LOG_LISTENING=
yes|no) and the status of a GET of --probe URL (PROBE=200, or PROBE=000
when nothing answered): what systemd would start the dependent units
against.

--send writes one datagram to the socket, as a test's own marker: the
socket keeps datagrams in order, so once the marker's line is in FILE,
the lines of every datagram sent before it are too.
"""
import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request


def probe(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return "%03d" % r.status
    except urllib.error.HTTPError as e:
        return "%03d" % e.code
    except (OSError, ValueError):
        return "000"


def log_has(path, text):
    try:
        with open(path, "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def serve(args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    s.bind(args.socket)
    out = open(args.out, "a", encoding="utf-8")
    while True:
        data = s.recv(65536)
        now = "%.6f" % time.time()
        fields = data.decode("utf-8", "replace").split("\n")
        fields = [f for f in fields if f]
        out.write(now + "\t" + "\t".join(fields) + "\n")
        out.flush()
        if "READY=1" in fields and (args.probe or args.log):
            # The log first: the probe's own request lands in it.
            seen = "yes" if log_has(args.log, "listening on") else "no"
            code = probe(args.probe) if args.probe else "-"
            out.write("%.6f\tLOG_LISTENING=%s\tPROBE=%s\n"
                      % (time.time(), seen, code))
            out.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--out")
    ap.add_argument("--probe")
    ap.add_argument("--log")
    ap.add_argument("--send", nargs=2, metavar=("PATH", "MESSAGE"))
    args = ap.parse_args()
    if args.send:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(args.send[1].encode(), args.send[0])
        return 0
    if not args.socket or not args.out:
        ap.error("--socket and --out are required")
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
