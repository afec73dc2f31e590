#!/usr/bin/env python3
"""A small UDP SIP user agent for the call tests (digest auth, RFC 7616 MD5 qop=auth), loopback only.

  call_client.py register HOST:PORT NUMBER AUTH_ID PASSWORD --contact IP:PORT [--bind PORT] [--expires N]
      REGISTER sip:NUMBER@HOST with Contact <sip:NUMBER@IP:PORT> (another program's address, e.g. a
      sipp UAS), answering the 401 once. Prints {"final": CODE}. --bind sends from that local port:
      Palisade sends calls over UDP to the address a REGISTER came from, so a sipp UAS is registered
      from its own port before it starts.
  call_client.py call HOST:PORT NUMBER AUTH_ID PASSWORD CALLEE [--no-auth] [--cancel-after S] [--wait S]
      INVITE sip:CALLEE@HOST from NUMBER (with an SDP offer); on 407 ACK it and send the INVITE again
      with Proxy-Authorization (username AUTH_ID); --no-auth stops at the first final answer.
      --cancel-after S: S seconds after the first 18x, send CANCEL. Every final non-2xx is ACKed; a
      2xx is ACKed and ended with BYE. --wait S bounds the wait for a final answer (default 15).
      --probe-from IP: once answered (after the ACK), send an INFO inside the call from IP, then one from the
      caller's own socket; their final codes are "probe_other" and "probe_same".
  Both modes: --src IP sends from that loopback address (default: the server's).
      Prints one JSON object: {"challenge": CODE|null, "responses": [[T, CODE, REASON], ...],
      "final": CODE, "final_t": T, "warning": WARNING-HEADER|null, "cancel": CODE|null, "bye": CODE|null,
      "proxy_authenticate": {...}},
      T = seconds since the (last) INVITE was sent.
Exit status 0 when answers came (whatever their codes), 2 on a timeout or a protocol error.
"""

import hashlib
import json
import os
import random
import socket
import sys
import time


def parse(raw):
    text = raw.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    hdrs = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs.append((k.strip().lower(), v.strip()))
    first = lines[0].split(" ", 2)
    msg = {"start": lines[0], "headers": hdrs, "raw": text}
    if first[0] == "SIP/2.0":
        msg["code"] = int(first[1])
        msg["reason"] = first[2] if len(first) > 2 else ""
    else:
        msg["method"] = first[0]
    return msg


def header(msg, *names):
    for k, v in msg["headers"]:
        if k in names:
            return v
    return None


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


def credentials(hdr_name, ch, user, password, method, uri):
    alg = ch.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg.upper()]
    hx = lambda s: h(s.encode()).hexdigest()  # noqa: E731
    cnonce = "%016x" % random.getrandbits(64)
    ha1 = hx(f"{user}:{ch['realm']}:{password}")
    ha2 = hx(f"{method}:{uri}")
    resp = hx(f"{ha1}:{ch['nonce']}:00000001:{cnonce}:auth:{ha2}")
    v = (
        f'{hdr_name}: Digest username="{user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", uri="{uri}", '
        f'response="{resp}", algorithm={alg}, cnonce="{cnonce}", qop=auth, nc=00000001'
    )
    if "opaque" in ch:
        v += f', opaque="{ch["opaque"]}"'
    return v


class UA:
    def __init__(self, host, port, bind=0, src=None):
        src = src or host
        if not host.startswith("127.") or not src.startswith("127."):
            raise SystemExit("call_client: loopback (127.x) only")
        self.server = (host, port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((src, bind))
        self.lhost, self.lport = self.s.getsockname()

    def send(self, text):
        self.s.sendto(text.encode(), self.server)

    def recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        self.s.settimeout(left)
        return parse(self.s.recvfrom(65535)[0])

    def via(self, branch):
        return f"Via: SIP/2.0/UDP {self.lhost}:{self.lport};branch={branch};rport"


def new_branch():
    return "z9hG4bK" + os.urandom(8).hex()


def register(ua, host, port, number, auth_id, password, contact, expires):
    uri = f"sip:{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + ua.lhost
    tag = os.urandom(6).hex()
    auth = None
    for cseq in (1, 2):
        branch = new_branch()
        lines = [
            f"REGISTER {uri} SIP/2.0",
            ua.via(branch),
            "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={tag}",
            f"To: <sip:{number}@{host}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{number}@{contact}>",
            f"Expires: {expires}",
        ]
        if auth:
            lines.append(auth)
        ua.send("\r\n".join(lines + ["Content-Length: 0", "", ""]))
        deadline = time.monotonic() + 5
        while True:
            r = ua.recv(deadline)
            if "code" in r and branch in (header(r, "via", "v") or "") and r["code"] >= 200:
                break
        if r["code"] == 401 and auth is None:
            ch = auth_params(header(r, "www-authenticate"))
            auth = credentials("Authorization", ch, auth_id, password, "REGISTER", uri)
            continue
        return {"final": r["code"]}
    return {"final": r["code"]}


def call(ua, host, port, number, auth_id, password, callee, no_auth, cancel_after, wait, probe_from=None):
    uri = f"sip:{callee}@{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + ua.lhost
    tag = os.urandom(6).hex()
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {ua.lhost}\r\ns=-\r\nc=IN IP4 {ua.lhost}\r\nt=0 0\r\n"
        f"m=audio {ua.lport + 1000} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    out = {"challenge": None, "responses": [], "final": None, "final_t": None, "cancel": None, "bye": None}

    def invite(cseq, branch, auth):
        lines = [
            f"INVITE {uri} SIP/2.0",
            ua.via(branch),
            "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={tag}",
            f"To: <sip:{callee}@{host}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:{number}@{ua.lhost}:{ua.lport}>",
            "User-Agent: palisade-e2e-call-client",
        ]
        if auth:
            lines.append(auth)
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]
        ua.send("\r\n".join(lines))

    def ack_non2xx(cseq, branch, to):
        ua.send(
            "\r\n".join(
                [
                    f"ACK {uri} SIP/2.0",
                    ua.via(branch),
                    "Max-Forwards: 70",
                    f"From: <sip:{number}@{host}>;tag={tag}",
                    f"To: {to}",
                    f"Call-ID: {call_id}",
                    f"CSeq: {cseq} ACK",
                    "Content-Length: 0",
                    "",
                    "",
                ]
            )
        )

    cseq, auth = 1, None
    while True:
        branch = new_branch()
        t0 = time.monotonic()
        invite(cseq, branch, auth)
        deadline = t0 + wait
        cancel_at = None
        while True:
            r = ua.recv(deadline)
            now = time.monotonic()
            if "method" in r:  # a request from the server (e.g. BYE after a 2xx): answer 200
                if r["method"] != "ACK":
                    ua.send(
                        "\r\n".join(
                            ["SIP/2.0 200 OK"]
                            + [f"{k.title()}: {v}" for k, v in r["headers"] if k in ("via", "from", "to", "call-id", "cseq")]
                            + ["Content-Length: 0", "", ""]
                        )
                    )
                continue
            cs = header(r, "cseq") or ""
            if branch not in (header(r, "via", "v") or ""):
                continue
            if cs.endswith("CANCEL"):
                out["cancel"] = r["code"]
                continue
            out["responses"].append([round(now - t0, 3), r["code"], r["reason"]])
            if 180 <= r["code"] < 200 and cancel_after is not None and cancel_at is None:
                cancel_at = now + cancel_after
            if r["code"] >= 200:
                break
            if cancel_at is not None:
                # wait (bounded) until the cancel time, answering nothing else
                while time.monotonic() < cancel_at:
                    ua.s.settimeout(max(0.01, cancel_at - time.monotonic()))
                    try:
                        ua.s.recvfrom(65535)
                    except socket.timeout:
                        pass
                ua.send(
                    "\r\n".join(
                        [
                            f"CANCEL {uri} SIP/2.0",
                            ua.via(branch),
                            "Max-Forwards: 70",
                            f"From: <sip:{number}@{host}>;tag={tag}",
                            f"To: <sip:{callee}@{host}>",
                            f"Call-ID: {call_id}",
                            f"CSeq: {cseq} CANCEL",
                            "Content-Length: 0",
                            "",
                            "",
                        ]
                    )
                )
                cancel_after, cancel_at = None, None
        code = r["code"]
        if code >= 300:
            ack_non2xx(cseq, branch, header(r, "to", "t"))
        if code == 407 and auth is None and not no_auth:
            out["challenge"] = 407
            out["proxy_authenticate"] = auth_params(header(r, "proxy-authenticate"))
            auth = credentials("Proxy-Authorization", out["proxy_authenticate"], auth_id, password, "INVITE", uri)
            cseq += 1
            out["responses"] = []
            continue
        out["final"] = code
        out["final_t"] = round(time.monotonic() - t0, 3)
        out["warning"] = header(r, "warning")
        if 200 <= code < 300:  # end the call at once: ACK then BYE to the Contact
            target = header(r, "contact", "m").split("<", 1)[-1].split(">", 1)[0]
            to = header(r, "to", "t")
            steps = [("ACK", cseq, ua, None)]
            if probe_from:  # an INFO inside the call from another address, then one from the caller's own
                steps += [("INFO", cseq + 1, UA(host, port, 0, probe_from), "probe_other"), ("INFO", cseq + 2, ua, "probe_same")]
            steps.append(("BYE", steps[-1][1] + 1, ua, None))
            for method, cs, sender, key in steps:
                if method == "BYE":
                    break
                b = new_branch()
                body = "Signal=5\r\nDuration=160\r\n" if method == "INFO" else ""
                sender.send(
                    "\r\n".join(
                        [
                            f"{method} {target} SIP/2.0",
                            sender.via(b),
                            "Max-Forwards: 70",
                            f"From: <sip:{number}@{host}>;tag={tag}",
                            f"To: {to}",
                            f"Call-ID: {call_id}",
                            f"CSeq: {cs} {method}",
                        ]
                        + (["Content-Type: application/dtmf-relay"] if body else [])
                        + [f"Content-Length: {len(body)}", "", body]
                    )
                )
                if key:
                    dl = time.monotonic() + 5
                    while True:
                        p = sender.recv(dl)
                        if "code" in p and b in (header(p, "via", "v") or "") and p["code"] >= 200:
                            out[key] = p["code"]
                            break
            for method, cs in (("BYE", steps[-1][1]),):
                b = new_branch()
                ua.send(
                    "\r\n".join(
                        [
                            f"{method} {target} SIP/2.0",
                            ua.via(b),
                            "Max-Forwards: 70",
                            f"From: <sip:{number}@{host}>;tag={tag}",
                            f"To: {to}",
                            f"Call-ID: {call_id}",
                            f"CSeq: {cs} {method}",
                            "Content-Length: 0",
                            "",
                            "",
                        ]
                    )
                )
            dl = time.monotonic() + 5
            while True:
                b = ua.recv(dl)
                if (header(b, "cseq") or "").endswith("BYE") and "code" in b:
                    out["bye"] = b["code"]
                    break
        return out


def main(argv):
    if len(argv) < 6 or argv[0] not in ("register", "call"):
        print(__doc__)
        return 2
    mode, hostport = argv[0], argv[1]
    host, port = hostport.rsplit(":", 1)
    port = int(port)

    def opt(name, default=None):
        return argv[argv.index(name) + 1] if name in argv else default

    ua = UA(host, port, int(opt("--bind", "0")), opt("--src"))
    try:
        if mode == "register":
            out = register(ua, host, port, argv[2], argv[3], argv[4], opt("--contact"), opt("--expires", "3600"))
        else:
            ca = opt("--cancel-after")
            out = call(
                ua, host, port, argv[2], argv[3], argv[4], argv[5], "--no-auth" in argv,
                None if ca is None else float(ca), float(opt("--wait", "15")), opt("--probe-from"),
            )
    except (OSError, TimeoutError, ValueError, IndexError, KeyError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
