#!/usr/bin/env python3
"""Drive a running baresip through its ctrl_tcp module (JSON in netstrings), loopback only.

usage: baresip_ctrl.py HOST:PORT [--wait-event TYPE[,TYPE...]] [--timeout S] [COMMAND [PARAMS...]]

Sends COMMAND (a baresip menu command such as dial, hangup, hold, resume, quit) when given, prints
baresip's response and every event received as one JSON object per line, and returns when the
response has arrived and, with --wait-event, one of the given event types (CALL_ESTABLISHED,
CALL_CLOSED, ...) has been seen, or when --timeout seconds (default 5) have passed.
Exit status: 0 when the response said ok and the awaited event was seen, 1 otherwise, 2 on usage.
"""
import json
import socket
import sys
import time


def frame(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


def unframe(buf: bytes):
    """Split complete netstrings off the front of buf: (messages, rest)."""
    out = []
    while True:
        colon = buf.find(b":")
        if colon < 0 or colon > 10:
            return out, buf
        try:
            n = int(buf[:colon])
        except ValueError:
            raise SystemExit("baresip_ctrl: bad netstring from baresip")
        if len(buf) < colon + 2 + n:
            return out, buf
        out.append(buf[colon + 1 : colon + 1 + n])
        buf = buf[colon + 2 + n :]


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    host, port = argv[1].rsplit(":", 1)
    if not host.startswith("127."):
        raise SystemExit("baresip_ctrl: loopback (127.x) addresses only")
    wait, timeout, words = set(), 5.0, []
    i = 2
    while i < len(argv):
        if argv[i] == "--wait-event":
            wait = set(argv[i + 1].split(","))
            i += 2
        elif argv[i] == "--timeout":
            timeout = float(argv[i + 1])
            i += 2
        else:
            words.append(argv[i])
            i += 1
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, int(port)), timeout=2)
    ok, got_response, seen = not words, not words, not wait
    if words:
        cmd = {"command": words[0], "params": " ".join(words[1:]), "token": "e2e"}
        sock.sendall(frame(json.dumps(cmd).encode()))
    buf = b""
    while not (got_response and seen):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        msgs, buf = unframe(buf + data)
        for m in msgs:
            print(m.decode(errors="replace"), flush=True)
            try:
                j = json.loads(m)
            except ValueError:
                continue
            if j.get("response"):
                got_response = True
                ok = bool(j.get("ok"))
            if j.get("event") and j.get("type") in wait:
                seen = True
    sock.close()
    return 0 if (ok and got_response and seen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
