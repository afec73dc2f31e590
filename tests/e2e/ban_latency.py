#!/usr/bin/env python3
"""Ban and unban propagation latency across cluster nodes (issue 17, docs/cluster.md).

    ban_latency.py NODE_HOST:PORT FIRST_SRC_IP COUNT -- PALISADE [OPTIONS...]

For each of COUNT sources (FIRST_SRC_IP, FIRST_SRC_IP + 1, …): checks that NODE answers an OPTIONS from the
source, runs `PALISADE blacklist add SRC OPTIONS…` (e.g. OPTIONS `--database URL`: the ban is written into
the database, not through NODE), and meanwhile sends an OPTIONS from SRC to NODE every 2 ms. The ban's latency is the
time from starting the command to sending the first probe NODE dropped (every later probe unanswered too). Then
`PALISADE blacklist remove SRC OPTIONS…` and the time until the first answered probe is the unban's latency.

Prints one JSON object: {"ban_ms": {"p50","p99","max","n"}, "unban_ms": {...}, "ban_after_exit_ms": {...},
"samples": ...}; `ban_after_exit_ms` measures from the command's exit (its commit is just before), and is
negative when the node dropped the source before the command process had even exited.
Exit status 0 when every ban and unban reached NODE within the per-step bound (3 s), 1 otherwise.
"""

import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time

PROBE_EVERY = 0.002
SILENCE = 0.3  # a ban is settled when nothing came back for this long after the command exited
STEP_LIMIT = 3.0


def options(host, port, src, call_id, cseq):
    branch = "z9hG4bK" + "%016x" % random.getrandbits(64)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{src[0]}>;tag=p{cseq}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answered_cseqs(sock):
    got = set()
    while True:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return got
        for line in data.split(b"\r\n"):
            if line.lower().startswith(b"cseq:"):
                try:
                    got.add(int(line.split(b":", 1)[1].split()[0]))
                except ValueError:
                    pass


def probe_run(sock, target, host, port, command, want_answers):
    """Runs `command` while probing; returns (ms to the change from start, ms from exit), or None."""
    src = sock.getsockname()
    call_id = "%032x" % random.getrandbits(128)
    sent = {}  # cseq -> send time
    answered = set()
    cseq = 0
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    exited = None
    while True:
        now = time.monotonic()
        if exited is None and proc.poll() is not None:
            exited = now
            if proc.returncode != 0:
                sys.exit(f"{' '.join(command)} failed: {proc.stderr.read().decode(errors='replace')}")
        cseq += 1
        sent[cseq] = now
        sock.sendto(options(host, port, src, call_id, cseq), target)
        time.sleep(PROBE_EVERY)
        answered |= answered_cseqs(sock)
        if now - start > STEP_LIMIT:
            proc.kill()
            return None
        if want_answers:
            # unban: the first answered probe sent after the command started
            if answered:
                first = min(answered)
                return (sent[first] - start) * 1000, (sent[first] - (exited or sent[first])) * 1000
        elif exited is not None and now - exited > SILENCE:
            # ban: once nothing was answered for SILENCE, the first probe after the last answered one
            last = max(answered, default=0)
            if now - sent.get(last, start) > SILENCE:
                first_dropped = last + 1
                return (sent[first_dropped] - start) * 1000, (sent[first_dropped] - exited) * 1000


def stats(values):
    if not values:
        return {"n": 0}
    v = sorted(values)

    def pct(p):
        return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))], 1)

    return {"n": len(v), "p50": pct(50), "p99": pct(99), "max": round(v[-1], 1)}


def main():
    args = sys.argv[1:]
    if "--" not in args or len(args) < 5:
        sys.exit(__doc__)
    sep = args.index("--")
    (node, first, count), admin = args[:sep], args[sep + 1 :]
    host, port = node.rsplit(":", 1)
    port = int(port)
    first = ipaddress.ip_address(first)
    ban, unban, after_exit, failures = [], [], [], []
    for i in range(int(count)):
        src = str(first + i)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((src, 0))
        sock.settimeout(1.0)
        sock.sendto(options(host, port, sock.getsockname(), "pre%d" % i, 1), (host, port))
        try:
            sock.recv(65535)
        except socket.timeout:
            sys.exit(f"{node} does not answer {src} before the ban")
        sock.setblocking(False)
        r = probe_run(sock, (host, port), host, port, admin[:1] + ["blacklist", "add", src] + admin[1:], False)
        if r is None:
            failures.append(f"ban of {src} did not reach {node} within {STEP_LIMIT} s")
        else:
            ban.append(r[0])
            after_exit.append(r[1])
        answered_cseqs(sock)
        r = probe_run(sock, (host, port), host, port, admin[:1] + ["blacklist", "remove", src] + admin[1:], True)
        if r is None:
            failures.append(f"unban of {src} did not reach {node} within {STEP_LIMIT} s")
        else:
            unban.append(r[0])
        sock.close()
    print(
        json.dumps(
            {
                "ban_ms": stats(ban),
                "unban_ms": stats(unban),
                "ban_after_exit_ms": stats(after_exit),
                "failures": failures,
                "samples": {"ban_ms": [round(x, 1) for x in ban]},
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
