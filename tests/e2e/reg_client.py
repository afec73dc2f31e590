#!/usr/bin/env python3
"""A small SIP REGISTER client with digest authentication (RFC 3261 + RFC 7616, qop=auth) for the e2e tests.

    reg_client.py HOST:PORT udp|tcp|tls NUMBER AUTH_ID PASSWORD [--query] [--expires N] [--no-auth]
                  [--resend N] [--replay]

Sends REGISTER for sip:NUMBER@HOST (To = From = the extension number, digest username = AUTH_ID); on a 401
answers the challenge once. --query leaves out the Contact header (a registration query), --no-auth stops after
the first answer. --resend N sends the authenticated REGISTER's very bytes N more times (retransmissions; their
final codes in "resent"); --replay then sends its credentials on a new request (new branch and CSeq; the final code
in "replayed"). tls does not verify the server's certificate (the tests' servers use a self-signed one).
Prints one JSON object on stdout:
    {"challenge": RESPONSE, "final": RESPONSE}   RESPONSE = {"status": "SIP/2.0 401 Unauthorized",
        "code": 401, "header_names": [...], "headers": [[name, value], ...], "www_authenticate": {...}}
Exit status 0 when it got answers (whatever their codes), 2 on a timeout or a protocol error.
"""

import hashlib
import json
import os
import random
import socket
import ssl
import sys


def parse(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append([k.strip(), v.strip()])
    code = int(lines[0].split(" ", 2)[1])
    resp = {
        "status": lines[0],
        "code": code,
        "header_names": [h[0] for h in headers],
        "headers": headers,
    }
    for k, v in headers:
        if k.lower() == "www-authenticate":
            resp["www_authenticate"] = auth_params(v)
    return resp


def auth_params(value):
    scheme, _, rest = value.partition(" ")
    out = {"scheme": scheme}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            out[key] = rest[i + 1 : end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            out[key] = rest[i:end].strip()
            i = end
    return out


def digest(algorithm, user, realm, password, method, uri, nonce, cnonce, nc="00000001"):
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm.upper()]
    hx = lambda s: h(s.encode()).hexdigest()  # noqa: E731
    ha1 = hx(f"{user}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    return hx(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


class Conn:
    def __init__(self, host, port, transport):
        self.transport = transport
        self.addr = (host, port)
        if transport == "udp":
            self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.s.bind((host, 0))
        else:
            self.s = socket.create_connection(self.addr, timeout=5)
            if transport == "tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self.s = ctx.wrap_socket(self.s)
        self.s.settimeout(5)
        self.local = self.s.getsockname()
        self.buf = b""

    def send(self, data):
        if self.transport == "udp":
            self.s.sendto(data, self.addr)
        else:
            self.s.sendall(data)

    def recv(self):
        if self.transport == "udp":
            return self.s.recvfrom(65535)[0]
        while True:
            if b"\r\n\r\n" in self.buf:
                head, rest = self.buf.split(b"\r\n\r\n", 1)
                clen = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") or line.lower().startswith(b"l:"):
                        clen = int(line.split(b":", 1)[1])
                if len(rest) >= clen:
                    msg = head + b"\r\n\r\n" + rest[:clen]
                    self.buf = rest[clen:]
                    return msg
            chunk = self.s.recv(65535)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk


def transaction(conn, build, sent=None):
    """Sends the request built for a fresh branch, returns the first final response of that branch (the bytes sent
    go into the list `sent` when given)."""
    branch = "z9hG4bK" + os.urandom(8).hex()
    data = build(branch).encode()
    if sent is not None:
        sent.append((data, branch))
    return answer(conn, data, branch)


def answer(conn, data, branch):
    """Sends `data` and returns the first final response of `branch`."""
    conn.send(data)
    while True:
        raw = conn.recv()
        if b"branch=" + branch.encode() not in raw:
            continue
        resp = parse(raw)
        if resp["code"] >= 200:
            return resp


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    opts = argv
    hostport, transport, number, auth_id, password = args[:5]
    host, port = hostport.rsplit(":", 1)
    expires = "3600"
    if "--expires" in opts:
        expires = opts[opts.index("--expires") + 1]
        args.remove(expires)
    resend = 0
    if "--resend" in opts:
        resend = int(opts[opts.index("--resend") + 1])
        args.remove(str(resend))
    conn = Conn(host, int(port), transport)
    lhost, lport = conn.local[0], conn.local[1]
    uri = f"sip:{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + lhost
    tag = os.urandom(6).hex()
    cseq = [0]

    def build(auth):
        def b(branch):
            cseq[0] += 1
            lines = [
                f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/{transport.upper()} {lhost}:{lport};branch={branch};rport",
                "Max-Forwards: 70",
                f"From: <sip:{number}@{host}>;tag={tag}",
                f"To: <sip:{number}@{host}>",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq[0]} REGISTER",
            ]
            if "--query" not in opts:
                lines.append(f"Contact: <sip:{number}@{lhost}:{lport};transport={transport}>")
                lines.append(f"Expires: {expires}")
            if auth:
                lines.append(auth)
            lines += ["User-Agent: palisade-e2e-reg-client", "Content-Length: 0", "", ""]
            return "\r\n".join(lines)

        return b

    out = {}
    try:
        first = transaction(conn, build(None))
        out["challenge"] = first
        if first["code"] == 401 and "--no-auth" not in opts and "www_authenticate" in first:
            ch = first["www_authenticate"]
            alg = ch.get("algorithm", "MD5")
            cnonce = "%016x" % random.getrandbits(64)
            resp = digest(alg, auth_id, ch["realm"], password, "REGISTER", uri, ch["nonce"], cnonce)
            auth = (
                f'Authorization: Digest username="{auth_id}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
                f'uri="{uri}", response="{resp}", algorithm={alg}, cnonce="{cnonce}", qop=auth, nc=00000001'
            )
            if "opaque" in ch:
                auth += f', opaque="{ch["opaque"]}"'
            sent = []
            out["final"] = transaction(conn, build(auth), sent)
            data, branch = sent[0]
            out["resent"] = [answer(conn, data, branch)["code"] for _ in range(resend)]
            if "--replay" in opts:
                out["replayed"] = transaction(conn, build(auth))["code"]
    except (OSError, EOFError, ValueError, IndexError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(out))
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
