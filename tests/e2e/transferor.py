#!/usr/bin/env python3
"""A transferring extension for the attended-transfer tests (UDP, loopback only), built on call_client.py.

  transferor.py HOST:PORT NUMBER AUTH_ID PASSWORD TARGET [--bogus] [--wait S]
      Registers NUMBER from its own socket, waits (up to --wait S, default 20) for a call and answers it
      (call 1), calls TARGET (call 2, answering the 407), then sends a REFER in call 1 whose Refer-To is
      <sip:TARGET@HOST?Replaces=CALL2-ID;to-tag=...;from-tag=...> (attended transfer); with --bogus, first a
      REFER naming a dialog that does not exist ("bogus", "bogus_warning"). Answers every NOTIFY and BYE with 200
      and waits (up to 5 s) for the BYEs of both calls.
      Prints one JSON object: {"register": CODE, "call2": CODE, "refer": CODE, "refer_warning": STR|null,
      ["bogus": CODE, "bogus_warning": STR|null,] "notify": [SIPFRAG, ...], "bye1": bool, "bye2": bool}.
  transferor.py HOST:PORT NUMBER AUTH_ID PASSWORD - --pull [--as NUMBER2 AUTH_ID2 PASSWORD2] [--wait S]
      Call pull (INVITE with Replaces, RFC 3891): answers a call as above (call 1), then a second socket (another
      phone) sends an INVITE with Replaces naming call 1's dialog, authenticated as NUMBER (or NUMBER2 with
      --as: another extension, which must be refused). Prints {"register": CODE, "pull": CODE, "pull_warning":
      STR|null, "call1_port": N, "pull_port": N|null, "bye1": bool} (the relay ports of the two answers' m= lines;
      bye1: the first phone got BYE).
Exit status 0 when it ran to the end, 2 on a timeout or a protocol error.
"""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import call_client as cc  # noqa: E402


def reply(ua, req, code, reason, extra=(), body=None, to_tag=None):
    hdrs = []
    for k, v in req["headers"]:
        if k in ("via", "from", "call-id", "cseq"):
            hdrs.append(f"{k.title()}: {v}")
        elif k == "to":
            hdrs.append(f"To: {v}" + (f";tag={to_tag}" if to_tag and "tag=" not in v else ""))
    lines = [f"SIP/2.0 {code} {reason}"] + hdrs + list(extra)
    if body:
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}", "", body]
    else:
        lines += ["Content-Length: 0", "", ""]
    ua.send("\r\n".join(lines))


def tag_of(value):
    for p in value.split(";")[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "tag":
            return v.strip()
    return ""


def uri_of(value):
    return value[value.index("<") + 1 : value.index(">")] if "<" in value else value.split(";")[0]


def main(argv):
    if len(argv) < 5:
        print(__doc__)
        return 2
    host, port = argv[0].rsplit(":", 1)
    port = int(port)
    number, auth_id, password, target = argv[1:5]
    bogus = "--bogus" in argv
    wait = float(argv[argv.index("--wait") + 1]) if "--wait" in argv else 20.0
    ua = cc.UA(host, port)
    out = {"register": None, "call2": None, "refer": None, "refer_warning": None, "notify": [], "bye1": False, "bye2": False}
    out["register"] = cc.register(ua, host, port, number, auth_id, password, f"{ua.lhost}:{ua.lport}", 600)["final"]
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {ua.lhost}\r\ns=-\r\nc=IN IP4 {ua.lhost}\r\nt=0 0\r\n"
        f"m=audio {ua.lport + 1000} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
    # ---- call 1: answer the first INVITE
    deadline = time.monotonic() + wait
    while True:
        r = ua.recv(deadline)
        if r.get("method") == "INVITE":
            break
    my_tag1 = os.urandom(6).hex()
    inv1 = r
    call_id1 = cc.header(r, "call-id", "i")
    their_tag1 = tag_of(cc.header(r, "from", "f"))
    remote_target1 = uri_of(cc.header(r, "contact", "m"))
    from1 = cc.header(r, "from", "f")
    to1 = cc.header(r, "to", "t") + f";tag={my_tag1}"
    reply(ua, inv1, 200, "OK", [f"Contact: <sip:{number}@{ua.lhost}:{ua.lport}>"], sdp, my_tag1)
    deadline = time.monotonic() + 5
    while True:
        r = ua.recv(deadline)
        if r.get("method") == "ACK":
            break
    if "--pull" in argv:
        return pull(argv, ua, host, port, number, auth_id, password, sdp, out, inv1, call_id1, my_tag1, their_tag1)
    # ---- call 2: INVITE the target, answering the 407
    uri2 = f"sip:{target}@{host}:{port}"
    call_id2 = os.urandom(10).hex() + "@" + ua.lhost
    my_tag2 = os.urandom(6).hex()
    auth, cseq = None, 1
    their_tag2 = None
    while True:
        branch = cc.new_branch()
        lines = [
            f"INVITE {uri2} SIP/2.0", ua.via(branch), "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={my_tag2}", f"To: <sip:{target}@{host}>",
            f"Call-ID: {call_id2}", f"CSeq: {cseq} INVITE", f"Contact: <sip:{number}@{ua.lhost}:{ua.lport}>",
        ]
        if auth:
            lines.append(auth)
        ua.send("\r\n".join(lines + ["Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]))
        deadline = time.monotonic() + 15
        while True:
            r = ua.recv(deadline)
            if "method" in r:
                if r["method"] not in ("ACK",):
                    reply(ua, r, 200, "OK")
                continue
            if branch in (cc.header(r, "via", "v") or "") and r["code"] >= 200:
                break
        to2 = cc.header(r, "to", "t")
        ack = [
            f"ACK {uri2} SIP/2.0", ua.via(branch if r["code"] >= 300 else cc.new_branch()), "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={my_tag2}", f"To: {to2}", f"Call-ID: {call_id2}", f"CSeq: {cseq} ACK",
            "Content-Length: 0", "", "",
        ]
        if r["code"] == 407 and auth is None:
            ua.send("\r\n".join(ack))
            ch = cc.auth_params(cc.header(r, "proxy-authenticate"))
            auth = cc.credentials("Proxy-Authorization", ch, auth_id, password, "INVITE", uri2)
            cseq += 1
            continue
        out["call2"] = r["code"]
        if r["code"] >= 300:
            print(json.dumps(out))
            return 2
        their_tag2 = tag_of(to2)
        target2 = uri_of(cc.header(r, "contact", "m"))
        ack[0] = f"ACK {target2} SIP/2.0"
        ua.send("\r\n".join(ack))
        break
    time.sleep(1)
    # ---- REFER in call 1 with Replaces naming call 2 (as this phone sees it); with --bogus first one naming a
    # dialog that does not exist (refused: the call goes on)
    real = f"{call_id2};to-tag={their_tag2};from-tag={my_tag2}"
    refers = ([("bogus", f"nosuchcall@{host};to-tag=x;from-tag=y")] if bogus else []) + [("refer", real)]
    for cseq, (key, replaces) in enumerate(refers, start=1):
        refer_to = f"<sip:{target}@{host}?Replaces={urllib.parse.quote(replaces, safe='')}>"
        branch = cc.new_branch()
        ua.send("\r\n".join([
            f"REFER {remote_target1} SIP/2.0", ua.via(branch), "Max-Forwards: 70",
            f"From: {to1}", f"To: {from1}", f"Call-ID: {call_id1}", f"CSeq: {cseq} REFER",
            f"Contact: <sip:{number}@{ua.lhost}:{ua.lport}>", f"Refer-To: {refer_to}",
            f"Referred-By: <sip:{number}@{host}>", "Content-Length: 0", "", "",
        ]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                r = ua.recv(deadline)
            except (TimeoutError, OSError):
                break
            if "code" in r and branch in (cc.header(r, "via", "v") or ""):
                if r["code"] >= 200:
                    out[key] = r["code"]
                    out[key + "_warning"] = cc.header(r, "warning")
                continue
            if r.get("method") == "NOTIFY":
                body = r["raw"].split("\r\n\r\n", 1)[1] if "\r\n\r\n" in r["raw"] else ""
                out["notify"].append(body.strip().split("\r\n")[0])
                reply(ua, r, 200, "OK")
            elif r.get("method") == "BYE":
                cid = cc.header(r, "call-id", "i")
                out["bye1"] |= cid == call_id1
                out["bye2"] |= cid == call_id2
                reply(ua, r, 200, "OK")
            elif r.get("method") not in (None, "ACK"):
                reply(ua, r, 200, "OK")
            if out["bye1"] and out["bye2"]:
                break
            if key == "bogus" and out.get("bogus"):
                break
        time.sleep(0.5)
    print(json.dumps(out))
    return 0


def m_port(text):
    for line in text.split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    return None


def pull(argv, ua, host, port, number, auth_id, password, sdp, out, inv1, call_id1, my_tag1, their_tag1):
    """INVITE with Replaces naming call 1 from a second socket; answers BYEs on the first."""
    if "--as" in argv:
        i = argv.index("--as")
        number, auth_id, password = argv[i + 1 : i + 4]
    out = {"register": out["register"], "pull": None, "pull_warning": None, "bye1": False}
    out["call1_port"] = m_port(inv1["raw"].split("\r\n\r\n", 1)[1])
    time.sleep(1)  # the caller's ACK confirms call 1 first
    ua2 = cc.UA(host, port)
    uri = f"sip:{number}@{host}:{port}"
    call_id = os.urandom(10).hex() + "@" + ua2.lhost
    tag = os.urandom(6).hex()
    replaces = f"{call_id1};to-tag={my_tag1};from-tag={their_tag1}"
    auth, cseq = None, 1
    while True:
        branch = cc.new_branch()
        lines = [
            f"INVITE {uri} SIP/2.0", ua2.via(branch), "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={tag}", f"To: <sip:{number}@{host}>",
            f"Call-ID: {call_id}", f"CSeq: {cseq} INVITE", f"Contact: <sip:{number}@{ua2.lhost}:{ua2.lport}>",
            f"Replaces: {replaces}", "Require: replaces",
        ]
        if auth:
            lines.append(auth)
        ua2.send("\r\n".join(lines + ["Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]))
        deadline = time.monotonic() + 5
        while True:
            r = ua2.recv(deadline)
            if "code" in r and branch in (cc.header(r, "via", "v") or "") and r["code"] >= 200:
                break
        to = cc.header(r, "to", "t")
        ack = [
            f"ACK {uri} SIP/2.0", ua2.via(branch if r["code"] >= 300 else cc.new_branch()), "Max-Forwards: 70",
            f"From: <sip:{number}@{host}>;tag={tag}", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq} ACK",
            "Content-Length: 0", "", "",
        ]
        ua2.send("\r\n".join(ack))
        if r["code"] == 407 and auth is None:
            ch = cc.auth_params(cc.header(r, "proxy-authenticate"))
            auth = cc.credentials("Proxy-Authorization", ch, auth_id, password, "INVITE", uri)
            cseq += 1
            continue
        break
    out["pull"] = r["code"]
    out["pull_warning"] = cc.header(r, "warning")
    out["pull_port"] = m_port(r["raw"].split("\r\n\r\n", 1)[1]) if r["code"] == 200 else None
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            q = ua.recv(deadline)
        except (TimeoutError, OSError):
            break
        if q.get("method") == "BYE":
            out["bye1"] = True
            reply(ua, q, 200, "OK")
            break
        if q.get("method") not in (None, "ACK"):
            reply(ua, q, 200, "OK")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (TimeoutError, OSError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(2)
