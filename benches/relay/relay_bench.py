#!/usr/bin/env python3
"""CPU per relayed RTP packet of Palisade's media relay, through real authenticated calls (loopback only).

  relay_bench.py --server 127.0.0.1:5070 --pid PID --callee NUMBER;AUTH;PASSWORD --callers FILE
                 --steps 50,100,200 --duration 10 [--repeat 2] [--pps 50] [--tick 0.0001] [--json-out FILE]

 1. registers the callee extension from this script's callee SIP socket (REGISTER, 401, digest);
 2. places max(steps) calls one after another (INVITE, 407, ACK, INVITE with Proxy-Authorization, 200, ACK),
    caller i = line i of --callers (number;auth_id;password), each call with its own caller media socket and
    callee media socket; the SDP of the 200 (caller side) and of Palisade's INVITE (callee side) give the
    relay ports; the callee answers 200 with its media socket in the SDP;
 3. checks every stream end to end (3 packets each way per call must come out on the far side);
 4. for every step (N calls): N x 2 G.711 streams (12-byte RTP header + 160 bytes, 20 ms, own SSRC, sequence
    numbers and timestamps), each at --pps packets/s, their start times spread evenly over one packet
    interval (phone-like: about N x 2 x pps / (1 / tick) packets per wake-up); a forked receiver drains
    every media socket (epoll) and counts what came out; Palisade's CPU = sum_exec_runtime of all its
    threads (/proc/PID/task/*/schedstat) and utime+stime (/proc/PID/stat) over the step;
    us/pkt = Palisade CPU / packets received on the far legs. Palisade's idle CPU with the calls up and
    no media is measured before the first step;
 5. ends every call with BYE (200 expected) and prints one JSON line per step.

Every address must be in 127.0.0.0/8. Every loop is bounded by a count and a deadline. Python 3 stdlib only.
"""
import argparse
import hashlib
import json
import os
import random
import re
import resource
import select
import socket
import struct
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD = 160


def die(msg):
    print("ERROR: " + msg, file=sys.stderr)
    sys.exit(1)


def loopback(host, what):
    if socket.inet_aton(host)[0] != 127:
        die(f"refusing non-loopback {what} {host!r}")


def cpu_ns(pid):
    tot = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                tot += int(f.read().split()[0])
        except OSError:
            pass
    return tot


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read().rsplit(")", 1)[1].split()
    return int(s[11]) + int(s[12])


def softirq_ticks():
    """Kernel packet work not charged to any process: the softirq column of /proc/stat's cpu line (machine-wide,
    so it includes the generator's share) plus the ksoftirqd threads' CPU. Same method as the rtpengine driver."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    irq = v[5] + v[6]
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                raw = f.read()
            if "(ksoftirqd/" not in raw:
                continue
            s = raw.rsplit(")", 1)[1].split()
            irq += int(s[11]) + int(s[12])
        except (OSError, IndexError):
            pass
    return irq


def machine_ticks():
    tot = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read().rsplit(")", 1)[1].split()
            tot += int(s[11]) + int(s[12]) + int(s[13]) + int(s[14])
        except (OSError, IndexError):
            pass
    return tot


# ------------------------------------------------------------------ SIP
class Msg:
    def __init__(self, raw):
        text = raw.decode("utf-8", "replace")
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))
        first = self.start.split(" ", 2)
        self.code = int(first[1]) if first[0] == "SIP/2.0" else None
        self.method = None if self.code else first[0]

    def get(self, *names):
        for k, v in self.headers:
            if k in names:
                return v
        return None

    def all(self, *names):
        return [v for k, v in self.headers if k in names]


def auth_params(value):
    scheme, _, rest = value.partition(" ")
    out = {"scheme": scheme}
    for m in re.finditer(r'(\w+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def digest(ch, user, password, method, uri):
    alg = ch.get("algorithm", "MD5").upper()
    h = (lambda s: hashlib.sha256(s.encode()).hexdigest()) if alg == "SHA-256" else (
        lambda s: hashlib.md5(s.encode()).hexdigest())
    ha1 = h(f"{user}:{ch['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{ch["realm"]}"', f'nonce="{ch["nonce"]}"', f'uri="{uri}"',
             f"algorithm={ch.get('algorithm', 'MD5')}"]
    if "auth" in [q.strip() for q in ch.get("qop", "").split(",")]:
        cnonce = "%016x" % random.getrandbits(64)
        resp = h(f"{ha1}:{ch['nonce']}:00000001:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", "nc=00000001", f'cnonce="{cnonce}"']
    else:
        resp = h(f"{ha1}:{ch['nonce']}:{ha2}")
    parts.append(f'response="{resp}"')
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


def pick_challenge(values):
    chs = [auth_params(v) for v in values]
    for want in ("MD5", "SHA-256"):
        for c in chs:
            if c.get("algorithm", "MD5").upper() == want:
                return c
    die(f"no usable challenge in {values}")


def sdp(port, sess):
    return (f"v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")


def sdp_port(body):
    m = re.search(r"^m=audio (\d+) ", body, re.M)
    c = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    if not m or not c:
        die(f"no audio in SDP: {body!r}")
    loopback(c.group(1), "SDP address")
    return c.group(1), int(m.group(1))


def branch():
    return "z9hG4bK%016x" % random.getrandbits(64)


class Sip:
    def __init__(self, server, bind_host):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.addr = self.sock.getsockname()

    def send(self, text):
        self.sock.sendto(text.encode(), self.server)

    def request(self, method, ruri, frm, to, callid, cseq, br, extra=(), body="", cseq_method=None):
        h = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP {self.addr[0]}:{self.addr[1]};branch={br};rport",
             "Max-Forwards: 70", f"From: {frm}", f"To: {to}", f"Call-ID: {callid}",
             f"CSeq: {cseq} {cseq_method or method}",
             f"Contact: <sip:{frm.split('sip:')[1].split('@')[0]}@{self.addr[0]}:{self.addr[1]}>",
             "User-Agent: palisade-relay-bench", *extra]
        if body:
            h.append("Content-Type: application/sdp")
        h.append(f"Content-Length: {len(body.encode())}")
        self.send("\r\n".join(h) + "\r\n\r\n" + body)


class Callee:
    """Answers every INVITE with 200 + SDP (the media port of the call being placed), BYE with 200."""

    def __init__(self, sip):
        self.sip = sip
        self.answers = {}  # Call-ID -> 200 text (resent on a retransmitted INVITE)
        self.next_media = None  # (sock, port) for the INVITE that comes next
        self.relay_ports = {}  # Call-ID -> relay address for this leg
        self.last_invite = None

    def handle(self, raw, src):
        m = Msg(raw)
        if m.code is not None or m.method == "ACK":
            return
        cid = m.get("call-id", "i")
        vias = m.all("via", "v")
        base = ["SIP/2.0 200 OK"] + [f"Via: {v}" for v in vias] + [
            f"From: {m.get('from', 'f')}", f"Call-ID: {cid}", f"CSeq: {m.get('cseq')}"]
        to = m.get("to", "t")
        if m.method == "INVITE":
            if cid not in self.answers:
                if self.next_media is None:
                    die("unexpected INVITE to the callee")
                port = self.next_media
                self.next_media = None
                self.relay_ports[cid] = sdp_port(m.body)
                self.last_invite = cid
                if ";tag=" not in to:
                    to += ";tag=%08x" % random.getrandbits(32)
                body = sdp(port, random.randint(1, 10**9))
                self.answers[cid] = "\r\n".join(base + [
                    f"To: {to}", f"Contact: <sip:callee@{self.sip.addr[0]}:{self.sip.addr[1]}>",
                    "Content-Type: application/sdp", f"Content-Length: {len(body)}"]) + "\r\n\r\n" + body
            self.sip.sock.sendto(self.answers[cid].encode(), src)
        else:
            self.sip.sock.sendto(("\r\n".join(base + [f"To: {to}", "Content-Length: 0"]) + "\r\n\r\n").encode(), src)


def pump(socks, handlers, until, deadline):
    """Receives on the SIP sockets until until() or the deadline."""
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select(socks, [], [], left)
        for s in r:
            raw, src = s.recvfrom(65535)
            handlers[s](raw, src)
    return True


def register(sip, callee_sip, host, number, auth_id, password):
    callid = "reg-%x@bench" % random.getrandbits(48)
    frm = f"<sip:{number}@{host}>;tag={random.getrandbits(32):x}"
    to = f"<sip:{number}@{host}>"
    ruri = f"sip:{host}"
    extra = ["Expires: 3600"]
    for cseq in (1, 2):
        callee_sip.request("REGISTER", ruri, frm, to, callid, cseq, branch(), extra)
        deadline = time.monotonic() + 5
        while True:
            r, _, _ = select.select([callee_sip.sock], [], [], max(0, deadline - time.monotonic()))
            if not r:
                die("REGISTER: no answer")
            m = Msg(callee_sip.sock.recv(65535))
            if m.code and m.code >= 200:
                break
        if m.code == 200:
            return
        if m.code != 401 or cseq == 2:
            die(f"REGISTER: {m.start}")
        ch = pick_challenge(m.all("www-authenticate"))
        extra = ["Expires: 3600", "Authorization: " + digest(ch, auth_id, password, "REGISTER", ruri)]


class Call:
    pass


def place_call(caller_sip, callee, handlers, host, port, callee_number, cred, i):
    number, auth_id, password = cred
    c = Call()
    c.a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.a.bind(("127.0.0.1", 0))
    c.b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.b.bind(("127.0.0.1", 0))
    for s in (c.a, c.b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    c.callid = "call-%d-%x@bench" % (i, random.getrandbits(48))
    c.frm = f"<sip:{number}@{host}>;tag={random.getrandbits(32):x}"
    to = f"<sip:{callee_number}@{host}>"
    ruri = f"sip:{callee_number}@{host}:{port}"
    body = sdp(c.a.getsockname()[1], random.randint(1, 10**9))
    callee.next_media = c.b.getsockname()[1]
    state = {"final": None}

    def on_caller(raw, _src):
        m = Msg(raw)
        if m.code and m.code >= 200 and m.get("call-id", "i") == c.callid:
            state["final"] = m

    handlers[caller_sip.sock] = on_caller
    br = branch()
    caller_sip.request("INVITE", ruri, c.frm, to, c.callid, 1, br, body=body)
    if not pump(list(handlers), handlers, lambda: state["final"] is not None, time.monotonic() + 5):
        die(f"call {i}: no answer to the first INVITE")
    m = state["final"]
    if m.code != 407:
        die(f"call {i}: first INVITE answered {m.start}")
    caller_sip.request("ACK", ruri, c.frm, m.get("to", "t"), c.callid, 1, br)
    ch = pick_challenge(m.all("proxy-authenticate"))
    state["final"] = None
    caller_sip.request("INVITE", ruri, c.frm, to, c.callid, 2, branch(),
                       ["Proxy-Authorization: " + digest(ch, auth_id, password, "INVITE", ruri)], body=body)
    if not pump(list(handlers), handlers, lambda: state["final"] is not None, time.monotonic() + 5):
        die(f"call {i}: no answer to the authenticated INVITE")
    m = state["final"]
    if m.code != 200:
        die(f"call {i}: authenticated INVITE answered {m.start}")
    c.to = m.get("to", "t")
    contact = m.get("contact", "m")
    c.target = re.search(r"<([^>]+)>", contact).group(1) if contact and "<" in contact else ruri
    c.routes = [f"Route: {r}" for r in reversed(m.all("record-route"))]
    caller_sip.request("ACK", c.target, c.frm, c.to, c.callid, 2, branch(), c.routes)
    c.relay_a = sdp_port(m.body)
    c.relay_b = callee.relay_ports[callee.last_invite]
    return c


def end_call(caller_sip, handlers, c):
    state = {"code": None}

    def on_caller(raw, _src):
        m = Msg(raw)
        if m.code and m.get("call-id", "i") == c.callid and "BYE" in (m.get("cseq") or ""):
            state["code"] = m.code

    handlers[caller_sip.sock] = on_caller
    caller_sip.request("BYE", c.target, c.frm, c.to, c.callid, 3, branch(), c.routes)
    pump(list(handlers), handlers, lambda: state["code"] is not None, time.monotonic() + 3)
    return state["code"]


# ------------------------------------------------------------------ media
def rtp_header(seq, ts, ssrc):
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)


def receiver(fds, duration, wfd):
    """Child: counts datagrams per socket until the deadline, then writes the counts as JSON."""
    counts = [0] * len(fds)
    lens_bad = 0
    ep = select.epoll()
    socks = []
    for k, fd in enumerate(fds):
        s = socket.socket(fileno=os.dup(fd))
        s.setblocking(False)
        socks.append(s)
        ep.register(s.fileno(), select.EPOLLIN)
    idx = {s.fileno(): k for k, s in enumerate(socks)}
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in ep.poll(min(left, 0.2)):
            s = socks[idx[fd]]
            while True:
                try:
                    d = s.recv(2048)
                except BlockingIOError:
                    break
                counts[idx[fd]] += 1
                if len(d) != 12 + PAYLOAD:
                    lens_bad += 1
    ru = resource.getrusage(resource.RUSAGE_SELF)
    os.write(wfd, json.dumps({"counts": counts, "bad_len": lens_bad, "cpu_s": ru.ru_utime + ru.ru_stime}).encode())
    os._exit(0)


def stream_step(calls, pps, duration, tick, pid):
    """Streams both directions of every call; returns the step's figures."""
    streams = []  # (socket, dest, ssrc)
    for c in calls:
        streams.append((c.a, c.relay_a, random.getrandbits(32)))
        streams.append((c.b, c.relay_b, random.getrandbits(32)))
    fds = [c.a.fileno() for c in calls] + [c.b.fileno() for c in calls]
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        receiver(fds, duration + 1.5, w)
    os.close(w)
    time.sleep(0.2)
    n = len(streams)
    interval = 1.0 / pps
    per_stream = int(duration * pps)
    payload = bytes([0xD5]) * PAYLOAD
    seqs = [random.getrandbits(16) for _ in streams]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    c0, k0, m0, q0 = cpu_ns(pid), cpu_ticks(pid), machine_ticks(), softirq_ticks()
    t0 = time.monotonic()
    sent = 0
    wakeups = 0
    hard_deadline = t0 + duration * 1.5 + 2
    for j in range(per_stream):
        base = t0 + j * interval
        for s in range(n):
            due = base + s * interval / n
            now = time.monotonic()
            if due > now:
                wakeups += 1
                time.sleep(max(due - now, tick))
            sock, dest, ssrc = streams[s]
            q = seqs[s] + j
            sock.sendto(rtp_header(q, q * 160, ssrc) + payload, dest)
            sent += 1
        if time.monotonic() > hard_deadline:
            break
    t1 = time.monotonic()
    time.sleep(0.3)  # in flight
    c1, k1, m1, q1 = cpu_ns(pid), cpu_ticks(pid), machine_ticks(), softirq_ticks()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out = b""
    while True:
        d = os.read(r, 1 << 20)
        if not d:
            break
        out += d
    os.close(r)
    os.waitpid(child, 0)
    rx = json.loads(out)
    got = sum(rx["counts"])
    cpu_s = (c1 - c0) / 1e9
    wall = t1 - t0 + 0.3
    gen_s = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) + rx["cpu_s"]
    return {
        "calls": len(calls), "streams": n, "pps_target": n * pps, "pps_sent": round(sent / (t1 - t0)),
        "sent": sent, "received": got, "received_pct": round(100.0 * got / max(sent, 1), 3),
        "streams_short": sum(1 for x in rx["counts"] if x < per_stream * 0.99), "bad_len": rx["bad_len"],
        "pkts_per_wakeup": round(sent / max(wakeups, 1), 2),
        "palisade_cpu_s": round(cpu_s, 4), "palisade_cpu_pct": round(100 * cpu_s / wall, 1),
        "us_per_pkt": round(cpu_s / max(got, 1) * 1e6, 3),
        "us_per_pkt_ticks": round((k1 - k0) / CLK_TCK / max(got, 1) * 1e6, 3),
        "softirq_s": round((q1 - q0) / CLK_TCK, 3),
        "us_per_pkt_with_softirq": round((cpu_s + (q1 - q0) / CLK_TCK) / max(got, 1) * 1e6, 3),
        "generator_us_per_pkt": round(gen_s / max(sent, 1) * 1e6, 2),
        "other_cpu_pct": round(100 * ((m1 - m0) / CLK_TCK - cpu_s - gen_s) / wall, 1),
        "wall_s": round(wall, 2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1:5070")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--callee", required=True, help="number;auth_id;password")
    ap.add_argument("--callers", required=True, help="file: number;auth_id;password per line")
    ap.add_argument("--steps", default="50,100,200")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--pps", type=int, default=50)
    ap.add_argument("--tick", type=float, default=0.0001)
    ap.add_argument("--setup-rate", type=float, default=40, help="calls placed per second")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    port = int(port)
    loopback(host, "server")
    steps = [int(x) for x in a.steps.split(",")]
    if not (1 <= a.duration <= 30 and 1 <= a.repeat <= 4 and max(steps) <= 1000 and 1 <= a.pps <= 1000):
        die("bounds: duration 1..30 s, repeat 1..4, at most 1000 calls, pps 1..1000")
    creds = [tuple(line.strip().split(";")[:3]) for line in open(a.callers) if re.match(r"^\d+;", line)]
    if len(creds) < max(steps):
        die(f"{len(creds)} callers for {max(steps)} calls")
    callee_number, callee_auth, callee_pw = a.callee.split(";")[:3]

    caller_sip = Sip((host, port), "127.0.0.1")
    callee_sip = Sip((host, port), "127.0.0.1")
    register(caller_sip, callee_sip, host, callee_number, callee_auth, callee_pw)
    callee = Callee(callee_sip)
    handlers = {callee_sip.sock: callee.handle}
    calls = []
    t0 = time.monotonic()
    for i in range(max(steps)):
        due = t0 + i / a.setup_rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        calls.append(place_call(caller_sip, callee, handlers, host, port, callee_number, creds[i], i))
    setup_s = time.monotonic() - t0
    print(f"# {len(calls)} calls up in {setup_s:.1f} s", file=sys.stderr)

    # every stream end to end: 3 packets each way per call
    ok = 0
    for c in calls:
        for k in range(3):
            c.a.sendto(rtp_header(k, k * 160, 1) + bytes(PAYLOAD), c.relay_a)
            c.b.sendto(rtp_header(k, k * 160, 2) + bytes(PAYLOAD), c.relay_b)
    time.sleep(0.5)
    for c in calls:
        for s in (c.a, c.b):
            s.setblocking(False)
            got = 0
            while True:
                try:
                    s.recv(2048)
                    got += 1
                except BlockingIOError:
                    break
            ok += got == 3
    print(f"# warm-up: {ok} of {2 * len(calls)} streams relayed 3/3 packets", file=sys.stderr)
    if ok != 2 * len(calls):
        die("some streams are not relayed end to end")
    for c in calls:
        c.a.setblocking(True)
        c.b.setblocking(True)

    i0 = cpu_ns(a.pid)
    time.sleep(2)
    idle_pct = (cpu_ns(a.pid) - i0) / 1e9 / 2 * 100
    print(f"# palisade idle with {len(calls)} calls up, no media: {idle_pct:.2f} % of a core", file=sys.stderr)

    results = []
    for rep in range(a.repeat):
        for n in steps:
            r = stream_step(calls[:n], a.pps, a.duration, a.tick, a.pid)
            r.update({"pass": rep + 1, "idle_pct_calls_up": round(idle_pct, 2), "setup_s": round(setup_s, 1)})
            results.append(r)
            print(json.dumps(r), flush=True)
            time.sleep(1)

    byes = [end_call(caller_sip, handlers, c) for c in calls]
    print(f"# BYE: {sum(1 for b in byes if b == 200)} of {len(byes)} answered 200", file=sys.stderr)
    if a.json_out:
        with open(a.json_out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
