#!/usr/bin/env python3
"""An established call, then another loopback address tries to act in its dialog (issue 12 item 9).

  dialog_hijack.py HOST:PORT NUMBER AUTH_ID PASSWORD CALLEE ATTACKER_IP [--cancel]

The caller (this script, on HOST) calls CALLEE (a sipp UAS echoing RTP), answers the 407, ACKs the 200 and sends
G.711-sized RTP every 20 ms to the relay while counting what comes back. ATTACKER_IP (another 127.x address)
then sends, with the dialog's Call-ID, tags and Request-URI, a BYE and a re-INVITE whose SDP points at itself;
afterwards the caller checks that audio still flows and ends the call with its own BYE.
Prints one JSON object: {"attack_bye": CODE|null, "attack_reinvite": CODE|null, "server_bye": BOOL,
"rtp_before": N, "rtp_after": N, "bye": CODE|null}. Exit status 0 when the run completed, 2 on an error.
With --cancel the callee only rings: ATTACKER_IP sends a CANCEL copying the caller's INVITE (Via, branch,
Call-ID, tags, CSeq); the caller then checks its INVITE still rings for a second and cancels it itself. Prints
{"attack_cancel": CODE|null, "still_ringing": BOOL, "cancel": CODE|null, "final": CODE|null}.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from call_client import UA, auth_params, credentials, header, new_branch, parse  # noqa: E402


def sdp_for(ip, port):
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


class Rtp:
    def __init__(self, ip):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((ip, 0))
        self.s.setblocking(False)
        self.port = self.s.getsockname()[1]
        self.seq = 0
        self.to = None
        self.received = 0

    def pump(self, seconds, sip_socket=None):
        """Send a packet every 20 ms for `seconds`, count what comes back; return requests seen on sip_socket."""
        seen = []
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= nxt and self.to:
                hdr = bytes([0x80, 0]) + self.seq.to_bytes(2, "big") + (self.seq * 160).to_bytes(4, "big")
                self.s.sendto(hdr + b"\x00\x00\x12\x34" + b"\xff" * 160, self.to)
                self.seq = (self.seq + 1) & 0xFFFF
                nxt += 0.02
            try:
                while True:
                    self.s.recvfrom(2048)
                    self.received += 1
            except BlockingIOError:
                pass
            if sip_socket is not None:
                sip_socket.setblocking(False)
                try:
                    seen.append(parse(sip_socket.recvfrom(65535)[0]))
                except BlockingIOError:
                    pass
                sip_socket.setblocking(True)
            time.sleep(0.002)
        return seen


def request(method, target, via, from_, to, call_id, cseq, contact=None, body=None):
    lines = [f"{method} {target} SIP/2.0", via, "Max-Forwards: 70", f"From: {from_}", f"To: {to}",
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}"]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}", "", body]
    else:
        lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines)


def final_response(sock, branch, deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            r = parse(sock.recvfrom(65535)[0])
        except socket.timeout:
            return None
        if "code" in r and branch in (header(r, "via", "v") or "") and r["code"] >= 200:
            return r


def cancel_attack(ua, host, port, uri, invite_lines, branch, call_id, cseq, attacker_ip):
    """The INVITE (with credentials) was sent: wait for its 180, let the attacker CANCEL it, then cancel it."""
    out = {"attack_cancel": None, "still_ringing": False, "cancel": None, "final": None}
    deadline = time.monotonic() + 10
    while True:
        r = ua.recv(deadline)
        if "code" in r and r["code"] == 180:
            break
        if "code" in r and r["code"] >= 200:
            raise ValueError(f"INVITE answered {r['code']} before ringing")
    # The attacker copies the INVITE's Via (branch and sent-by), From, To, Call-ID and CSeq number.
    keep = [line for line in invite_lines[1:] if line.split(":", 1)[0] in ("Via", "From", "To", "Call-ID")]
    cancel = [f"CANCEL {uri} SIP/2.0", "Max-Forwards: 70"] + keep + [f"CSeq: {cseq} CANCEL", "Content-Length: 0", "", ""]
    evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil.bind((attacker_ip, 0))
    evil.sendto("\r\n".join(cancel).encode(), (host, port))
    evil.settimeout(2)
    try:
        out["attack_cancel"] = parse(evil.recvfrom(65535)[0]).get("code")
    except socket.timeout:
        pass
    # Still ringing: no final answer to the INVITE for a second.
    end = time.monotonic() + 1.0
    out["still_ringing"] = True
    while time.monotonic() < end:
        try:
            r = ua.recv(end)
        except TimeoutError:
            break
        except socket.timeout:
            break
        if "code" in r and branch in (header(r, "via", "v") or "") and r["code"] >= 200:
            out["still_ringing"] = False
            out["final"] = r["code"]
    ua.send("\r\n".join(cancel))
    deadline = time.monotonic() + 5
    while out["cancel"] is None or out["final"] is None:
        try:
            r = ua.recv(deadline)
        except TimeoutError:
            break
        if "code" not in r:
            continue
        if (header(r, "cseq") or "").endswith("CANCEL"):
            out["cancel"] = r["code"]
        elif r["code"] >= 200:
            out["final"] = r["code"]
            to = header(r, "to", "t")
            ua.send(request("ACK", uri, invite_lines[1], invite_lines[3].split(": ", 1)[1], to, call_id, cseq))
    print(json.dumps(out))
    return 0


def main(argv):
    cancel_mode = "--cancel" in argv
    argv = [a for a in argv if a != "--cancel"]
    if len(argv) != 6:
        print(__doc__)
        return 2
    host, port = argv[0].rsplit(":", 1)
    port = int(port)
    number, auth_id, password, callee, attacker_ip = argv[1:]
    if not attacker_ip.startswith("127."):
        raise SystemExit("dialog_hijack: loopback attacker only")
    ua = UA(host, port)
    rtp = Rtp(host)
    uri = f"sip:{callee}@{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + ua.lhost
    tag = os.urandom(6).hex()
    from_ = f"<sip:{number}@{host}>;tag={tag}"
    sdp = sdp_for(ua.lhost, rtp.port)
    out = {"attack_bye": None, "attack_reinvite": None, "server_bye": False, "rtp_before": 0, "rtp_after": 0,
           "bye": None}

    cseq, auth = 1, None
    while True:
        branch = new_branch()
        lines = [f"INVITE {uri} SIP/2.0", ua.via(branch), "Max-Forwards: 70", f"From: {from_}",
                 f"To: <sip:{callee}@{host}>", f"Call-ID: {call_id}", f"CSeq: {cseq} INVITE",
                 f"Contact: <sip:{number}@{ua.lhost}:{ua.lport}>"]
        if auth:
            lines.append(auth)
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]
        ua.send("\r\n".join(lines))
        if cancel_mode and auth:
            return cancel_attack(ua, host, port, uri, lines, branch, call_id, cseq, attacker_ip)
        r = final_response(ua.s, branch, time.monotonic() + 10)
        if r is None:
            raise TimeoutError("no final answer to the INVITE")
        if r["code"] == 407 and auth is None:
            ua.send(request("ACK", uri, ua.via(branch), from_, header(r, "to", "t"), call_id, cseq))
            ch = auth_params(header(r, "proxy-authenticate"))
            auth = credentials("Proxy-Authorization", ch, auth_id, password, "INVITE", uri)
            cseq += 1
            continue
        if r["code"] != 200:
            raise ValueError(f"INVITE answered {r['code']}")
        break
    to = header(r, "to", "t")
    target = header(r, "contact", "m").split("<", 1)[-1].split(">", 1)[0]
    body = r["raw"].split("\r\n\r\n", 1)[1]
    c_ip = [line.split()[-1] for line in body.split("\r\n") if line.startswith("c=")][0]
    m_port = int([line.split()[1] for line in body.split("\r\n") if line.startswith("m=audio")][0])
    rtp.to = (c_ip, m_port)
    ua.send(request("ACK", target, ua.via(new_branch()), from_, to, call_id, cseq))
    rtp.pump(1.0)
    out["rtp_before"] = rtp.received

    # The attacker: same dialog identifiers, another address.
    evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil.bind((attacker_ip, 0))
    evil_via = lambda b: f"Via: SIP/2.0/UDP {attacker_ip}:{evil.getsockname()[1]};branch={b};rport"  # noqa: E731
    evil_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil_rtp.bind((attacker_ip, 0))
    for method, cs, sdp_body in (("BYE", cseq + 10, None), ("INVITE", cseq + 11, sdp_for(attacker_ip, evil_rtp.getsockname()[1]))):
        b = new_branch()
        evil.sendto(request(method, target, evil_via(b), from_, to, call_id, cs,
                            contact=f"<sip:{number}@{attacker_ip}:{evil.getsockname()[1]}>", body=sdp_body).encode(),
                    (host, port))
        resp = final_response(evil, b, time.monotonic() + 3)
        out["attack_bye" if method == "BYE" else "attack_reinvite"] = resp["code"] if resp else None
        if resp and method == "INVITE":
            evil.sendto(request("ACK", target, evil_via(new_branch()), from_, header(resp, "to", "t"), call_id,
                                cs).encode(), (host, port))

    # Audio still flows, and Palisade did not hang up on the caller.
    before = rtp.received
    seen = rtp.pump(1.5, ua.s)
    out["rtp_after"] = rtp.received - before
    out["server_bye"] = any(m.get("method") == "BYE" for m in seen)

    b = new_branch()
    ua.send(request("BYE", target, ua.via(b), from_, to, call_id, cseq + 1))
    resp = final_response(ua.s, b, time.monotonic() + 5)
    out["bye"] = resp["code"] if resp else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, TimeoutError, ValueError, IndexError, KeyError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(2)
