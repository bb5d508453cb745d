#!/usr/bin/python3
"""tests/bench/connscale.py - many connections at once against one server.

Used by tests/bench/bench.sh (row j); not part of `make check`.

  connscale.py idle HOST PORT PATH N PID
      Opens N keep-alive connections, asks each for PATH once (every
      answer must be 200 with its whole body), then holds them all open
      and idle.  Prints one JSON object: the server's VmRSS with all N
      held, its VmRSS before, and whether a fresh connection is still
      answered while they are held.

  connscale.py download HOST PORT PATH N SHA256 PID
      N concurrent GETs of PATH (a blob), each on its own connection and
      all started together; every body is hashed and must match SHA256.
      Prints one JSON object: wrong bodies, completion times (p50, p99,
      max; seconds since the common start), and the server's peak VmRSS
      sampled every 50 ms while they ran.

Exit status 0 when every answer was right, 1 otherwise (the JSON says
what), 2 on a usage error.  Only 127.0.0.1 is meant: the load generator
and the server share the machine.
"""

import asyncio
import hashlib
import json
import resource
import sys
import time


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    return status, length


def request(host, port, path):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: */*\r\n\r\n").encode()


async def one_get(host, port, path, keep):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request(host, port, path))
    status, length = await read_head(reader)
    if length is not None:
        await reader.readexactly(length)
    if not keep:
        writer.close()
        return status, None
    return status, (reader, writer)


async def idle(host, port, path, n, pid):
    before = rss_kib(pid)
    conns, bad = [], 0
    # Opened in batches: the listen backlog is finite.
    for i in range(0, n, 500):
        res = await asyncio.gather(
            *[one_get(host, port, path, True)
              for _ in range(min(500, n - i))], return_exceptions=True)
        for r in res:
            if isinstance(r, BaseException) or r[0] != 200:
                bad += 1
            else:
                conns.append(r[1])
    await asyncio.sleep(0)
    held = rss_kib(pid)
    try:
        status, _ = await asyncio.wait_for(
            one_get(host, port, path, False), 10)
        fresh_ok = status == 200
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        fresh_ok = False
    # Still open? Each held connection answers one more request.
    alive = 0
    for reader, writer in conns[:50]:
        writer.write(request(host, port, path))
        try:
            status, length = await asyncio.wait_for(read_head(reader), 10)
            if length is not None:
                await reader.readexactly(length)
            alive += status == 200
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
    for _, writer in conns:
        writer.close()
    out = {"n": n, "held": len(conns), "refused_or_bad": bad,
           "rss_before_kib": before, "rss_held_kib": held,
           "fresh_ok": fresh_ok, "held_still_answer": alive,
           "held_checked": min(50, len(conns))}
    print(json.dumps(out))
    return bad == 0 and fresh_ok and alive == min(50, len(conns))


async def download(host, port, path, n, want, pid):
    start = time.monotonic()
    peak = [rss_kib(pid)]
    done = asyncio.Event()

    async def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            await asyncio.sleep(0.05)

    async def get():
        reader, writer = await asyncio.open_connection(host, port,
                                                       limit=1 << 20)
        writer.write(request(host, port, path))
        status, length = await read_head(reader)
        h = hashlib.sha256()
        left = length if length is not None else -1
        while left != 0:
            b = await reader.read(1 << 18 if left < 0 else min(left, 1 << 18))
            if not b:
                break
            h.update(b)
            left -= len(b)
        writer.close()
        return status == 200 and left == 0 and h.hexdigest() == want, \
            time.monotonic() - start

    sampler = asyncio.ensure_future(sample())
    res = await asyncio.gather(*[get() for _ in range(n)],
                               return_exceptions=True)
    done.set()
    await sampler
    times = sorted(r[1] for r in res if not isinstance(r, BaseException))
    wrong = sum(1 for r in res if isinstance(r, BaseException) or not r[0])

    def pct(p):
        return times[min(len(times) - 1, int(p * len(times)))] if times \
            else -1
    out = {"n": n, "wrong": wrong, "p50_s": round(pct(0.50), 3),
           "p99_s": round(pct(0.99), 3),
           "max_s": round(times[-1], 3) if times else -1,
           "peak_rss_kib": peak[0], "hwm_kib": rss_kib(pid, "VmHWM")}
    print(json.dumps(out))
    return wrong == 0


def main(argv):
    if len(argv) < 6 or argv[1] not in ("idle", "download"):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, path, n = argv[2], int(argv[3]), argv[4], int(argv[5])
    raise_nofile(n)
    if argv[1] == "idle" and len(argv) == 7:
        ok = asyncio.run(idle(host, port, path, n, int(argv[6])))
    elif argv[1] == "download" and len(argv) == 8:
        ok = asyncio.run(download(host, port, path, n, argv[6],
                                  int(argv[7])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
