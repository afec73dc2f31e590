#!/usr/bin/env python3
"""SIP client for the anti-hacking guard e2e tests: sends from a chosen loopback source address.

    guard_client.py HOST:PORT SRC_IP probe     [--tcp] [--timeout S]
    guard_client.py HOST:PORT SRC_IP auth N    NUMBER AUTH_ID PASSWORD [--timeout S] [--stop-on-silence]
    guard_client.py HOST:PORT SRC_IP challenge N [--timeout S] [--stop-on-silence]

probe      one OPTIONS (UDP, or a new TCP connection with --tcp). Prints one JSON object
           {"result": "answered"|"silent"|"refused"|"closed", "code": N|null, "sent_ms": UNIX_MS} (sent_ms: when
           the request left, or the connection was attempted); exit 0 when answered, 1 otherwise.
auth       N registration attempts, one after the other: REGISTER, and on a 401 the same REGISTER with an
           RFC 7616 MD5 qop=auth digest for AUTH_ID/PASSWORD (a wrong password makes a failed authentication).
           Prints one JSON line per attempt: {"attempt": i, "challenge": CODE|null, "final": CODE|null}
           (null = no answer within the timeout).
challenge  N REGISTERs that never answer the challenge (each a new Call-ID). One JSON line per request:
           {"attempt": i, "code": CODE|null}.
The socket is bound to SRC_IP (any 127.0.0.x works on Linux loopback), so the server sees that source address.
Every wait is bounded by --timeout (default 1 s); --stop-on-silence ends the run at the first unanswered request.
Exit status 0 unless an error other than silence happened (2), or a probe went unanswered (1).
"""

import hashlib
import json
import os
import random
import socket
import sys
import time


def parse(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
    return int(lines[0].split(" ", 2)[1]), headers


def auth_params(value):
    _, _, rest = value.partition(" ")
    out = {}
    for part in rest.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip().lower()] = v.strip().strip('"')
    return out


def digest(user, realm, password, method, uri, nonce, cnonce, nc="00000001"):
    hx = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    return hx(f"{hx(f'{user}:{realm}:{password}')}:{nonce}:{nc}:{cnonce}:auth:{hx(f'{method}:{uri}')}")


class Udp:
    def __init__(self, host, port, src, timeout):
        self.addr = (host, port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((src, 0))
        self.timeout = timeout
        self.local = self.s.getsockname()

    def transaction(self, build):
        """Sends one request (fresh branch); returns (code, headers) of its first final response, or None."""
        branch = "z9hG4bK" + os.urandom(8).hex()
        SENT[0] = int(time.time() * 1000)
        self.s.sendto(build(branch).encode(), self.addr)
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                raw = self.s.recvfrom(65535)[0]
            except socket.timeout:
                return None
            if b"branch=" + branch.encode() not in raw:
                continue  # a late answer to an earlier request
            code, headers = parse(raw)
            if code >= 200:
                return code, headers


def request(method, uri, lhost, lport, transport, call_id, tag, cseq, to_user, extra=()):
    def build(branch):
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{transport} {lhost}:{lport};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{to_user}@{lhost}>;tag={tag}",
            f"To: <sip:{to_user}@{uri[4:].split(':')[0]}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *extra,
            "User-Agent: palisade-e2e-guard-client",
            "Content-Length: 0",
            "",
            "",
        ]
        return "\r\n".join(lines)

    return build


def probe(host, port, src, timeout, tcp):
    r = probe1(host, port, src, timeout, tcp)
    r["sent_ms"] = SENT[0]
    return r


SENT = [0]


def probe1(host, port, src, timeout, tcp):
    uri = f"sip:{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + src
    if not tcp:
        u = Udp(host, port, src, timeout)
        r = u.transaction(request("OPTIONS", uri, src, u.local[1], "UDP", call_id, "p1", 1, "ping"))
        return {"result": "answered", "code": r[0]} if r else {"result": "silent", "code": None}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    SENT[0] = int(time.time() * 1000)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return {"result": "refused", "code": None}
    except socket.timeout:
        return {"result": "silent", "code": None}
    lport = s.getsockname()[1]
    msg = request("OPTIONS", uri, src, lport, "TCP", call_id, "p1", 1, "ping")("z9hG4bK" + os.urandom(8).hex())
    buf = b""
    try:
        s.sendall(msg.encode())
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65535)
            if not chunk:
                return {"result": "closed", "code": None}
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        return {"result": "closed", "code": None}
    except socket.timeout:
        return {"result": "silent", "code": None}
    finally:
        s.close()
    return {"result": "answered", "code": parse(buf)[0]}


def auth_attempts(host, port, src, timeout, n, number, auth_id, password, stop):
    u = Udp(host, port, src, timeout)
    uri = f"sip:{host}:{port}"
    contact = (f"Contact: <sip:{number}@{src}:{u.local[1]}>", "Expires: 60")
    for i in range(1, n + 1):
        call_id = os.urandom(10).hex() + "@" + src
        tag = os.urandom(6).hex()
        first = u.transaction(request("REGISTER", uri, src, u.local[1], "UDP", call_id, tag, 1, number, contact))
        rec = {"attempt": i, "challenge": first[0] if first else None, "final": None}
        if first and first[0] == 401:
            wa = [v for k, v in first[1] if k == "www-authenticate"]
            ch = auth_params(wa[0]) if wa else {}
            if "nonce" in ch:
                cnonce = "%016x" % random.getrandbits(64)
                resp = digest(auth_id, ch["realm"], password, "REGISTER", uri, ch["nonce"], cnonce)
                auth = (
                    f'Authorization: Digest username="{auth_id}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
                    f'uri="{uri}", response="{resp}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc=00000001'
                )
                if "opaque" in ch:
                    auth += f', opaque="{ch["opaque"]}"'
                fin = u.transaction(
                    request("REGISTER", uri, src, u.local[1], "UDP", call_id, tag, 2, number, (*contact, auth))
                )
                rec["final"] = fin[0] if fin else None
        print(json.dumps(rec), flush=True)
        if stop and (rec["challenge"] is None or (first[0] == 401 and rec["final"] is None)):
            break


def challenges(host, port, src, timeout, n, stop):
    u = Udp(host, port, src, timeout)
    uri = f"sip:{host}:{port}"
    for i in range(1, n + 1):
        call_id = os.urandom(10).hex() + "@" + src
        contact = (f"Contact: <sip:1000@{src}:{u.local[1]}>", "Expires: 60")
        r = u.transaction(request("REGISTER", uri, src, u.local[1], "UDP", call_id, "c%d" % i, 1, "1000", contact))
        print(json.dumps({"attempt": i, "code": r[0] if r else None}), flush=True)
        if stop and r is None:
            break


def main(argv):
    timeout = 1.0
    if "--timeout" in argv:
        k = argv.index("--timeout")
        timeout = float(argv[k + 1])
        del argv[k : k + 2]
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    hostport, src, mode = args[:3]
    host, port = hostport.rsplit(":", 1)
    port = int(port)
    stop = "--stop-on-silence" in flags
    if mode == "probe":
        r = probe(host, port, src, timeout, "--tcp" in flags)
        print(json.dumps(r))
        return 0 if r["result"] == "answered" else 1
    if mode == "auth":
        n = int(args[3])
        auth_attempts(host, port, src, timeout, n, args[4], args[5], args[6], stop)
        return 0
    if mode == "challenge":
        challenges(host, port, src, timeout, int(args[3]), stop)
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
