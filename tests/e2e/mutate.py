#!/usr/bin/env python3
"""Send a deterministic flood of malformed SIP datagrams over UDP (loopback only).

usage: mutate.py HOST:PORT [--count N] [--rate PER_S] [--seed S] [--torture-dir DIR] [--dump DIR]

Each datagram is a random mutation of a valid SIP message (requests and responses):
bit flips, truncation, duplicated / deleted / swapped header lines, huge header values,
wrong Content-Length, bare LF line ends, NUL and control bytes, UTF-8 and invalid bytes,
plain garbage. The RFC 4475 torture messages in --torture-dir (*.dat), when that
directory exists, are sent unchanged once each and also used as mutation seeds.
The same --seed gives the same datagrams. --dump DIR also writes each one to a file
(for reproducing a crash). Prints one summary line.
"""
import argparse
import os
import random
import socket
import sys
import time

MAX_DATAGRAM = 65507


def valid_messages(host, port):
    """A handful of well-formed messages of every kind the server may see."""
    h = f"{host}:{port}"
    common = (
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{b};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:bob@{h}>\r\n"
        "Call-ID: {b}@127.0.0.1\r\n"
    )
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    msgs = []
    for i, (method, extra, body) in enumerate([
        ("OPTIONS", "Accept: application/sdp\r\n", ""),
        ("REGISTER", "Contact: <sip:alice@127.0.0.1:5999>;expires=60\r\nExpires: 60\r\n", ""),
        ("INVITE", "Contact: <sip:alice@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\n", sdp),
        ("BYE", "", ""),
        ("CANCEL", "", ""),
        ("ACK", "", ""),
        ("MESSAGE", "Content-Type: text/plain\r\n", "hello"),
        ("SUBSCRIBE", "Event: message-summary\r\nExpires: 60\r\n", ""),
    ]):
        b = f"e2e{i}"
        msgs.append(
            f"{method} sip:bob@{h} SIP/2.0\r\n" + common.format(b=b, h=h)
            + f"CSeq: {i + 1} {method}\r\n" + extra
            + f"Content-Length: {len(body.encode())}\r\n\r\n" + body
        )
    msgs.append(
        "SIP/2.0 200 OK\r\n" + common.format(b="resp", h=h)
        + "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    return [m.encode() for m in msgs]


def split_lines(msg):
    head, sep, body = msg.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep, body


def join_lines(lines, sep, body):
    return b"\r\n".join(lines) + sep + body


def mutate(rng, msg, depth=0):
    """One random mutation of msg (never empty, never over MAX_DATAGRAM bytes)."""
    out = mutate_once(rng, msg or b"\r\n", depth)[:MAX_DATAGRAM]
    return out or b"\x00"


def mutate_once(rng, msg, depth):
    kind = rng.randrange(14) if depth < 3 else rng.randrange(2)
    lines, sep, body = split_lines(msg)
    if kind == 0:  # bit flips
        b = bytearray(msg)
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 1:  # truncation
        return msg[: rng.randrange(len(msg))]
    if kind == 2 and len(lines) > 1:  # duplicated header line(s)
        i = rng.randrange(1, len(lines))
        lines[i:i] = [lines[i]] * rng.choice([1, 2, 50, 500])
        return join_lines(lines, sep, body)
    if kind == 3 and len(lines) > 1:  # deleted header line
        del lines[rng.randrange(1, len(lines))]
        return join_lines(lines, sep, body)
    if kind == 4 and len(lines) > 2:  # swapped lines (request line may move)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return join_lines(lines, sep, body)
    if kind == 5 and len(lines) > 1:  # huge header value
        i = rng.randrange(1, len(lines))
        name = lines[i].split(b":", 1)[0]
        lines[i] = name + b": " + bytes([rng.choice(b"A;,<>\"@:%")]) * rng.choice([1000, 9000, 40000, 64000])
        return join_lines(lines, sep, body)[:MAX_DATAGRAM]
    if kind == 6:  # wrong Content-Length
        cl = rng.choice([b"-1", b"99999999999999999999", b"100000", b"0x10", b"", b"1 2", b"18446744073709551616"])
        lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
        lines.append(b"Content-Length: " + cl)
        return join_lines(lines, sep, body)
    if kind == 7:  # bare LF, or bare CR, line ends
        return msg.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]))
    if kind == 8:  # NUL / control bytes / invalid UTF-8 inserted
        b = bytearray(msg)
        for _ in range(rng.randint(1, 8)):
            b.insert(rng.randrange(len(b) + 1), rng.choice([0, 1, 7, 8, 0x1B, 0x7F, 0x80, 0xC0, 0xFF, 0xFE]))
        return bytes(b)
    if kind == 9:  # garbage
        return bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 16, 200, 1400])))
    if kind == 10:  # request line games
        first = rng.choice([
            b"OPTIONS sip:x SIP/2.0", b"OPTIONS  sip:x@127.0.0.1  SIP/2.0", b"OPTIONS sip:x@127.0.0.1 SIP/7.0",
            b"OPTIONS sip:x@127.0.0.1", b"SIP/2.0 999999 X", b"SIP/2.0 20 OK", b"options sip:x@[::1 SIP/2.0",
            b"INVITE sip:%00@127.0.0.1 SIP/2.0", b"\xff\xfe SIP/2.0", b"", b" ", b"A" * 5000 + b" sip:x SIP/2.0",
        ])
        lines[0] = first
        return join_lines(lines, sep, body)
    if kind == 11:  # header-name games
        i = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
        lines.insert(i, rng.choice([
            b": no name", b"No-Colon-Here", b"Via:", b"Via: SIP/2.0/UDP", b" folded continuation at start",
            b"CSeq: 4294967296 OPTIONS", b"CSeq: 1 INVITE", b"Max-Forwards: -1", b"Max-Forwards: 300",
            b"Call-ID:", b"Via: SIP/2.0/UDP [::1;branch=z9hG4bK", b"Content-Length: 5\r\nContent-Length: 7",
            b"X" * 200 + b": y", "Subject: \u00e9t\u00e9 \u2603".encode(),
        ]))
        return join_lines(lines, sep, body)
    if kind == 12:  # many tiny headers (header-count limit)
        lines[1:1] = [b"X-H%d: v" % n for n in range(rng.choice([100, 1000, 4000]))]
        return join_lines(lines, sep, body)[:MAX_DATAGRAM]
    # kind 13 (and a kind that did not apply to this message): two mutations stacked
    return mutate(rng, mutate(rng, msg, depth + 1), depth + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=2000.0, help="datagrams per second")
    ap.add_argument("--seed", type=int, default=4475)
    ap.add_argument("--torture-dir")
    ap.add_argument("--dump")
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    port = int(port)
    if not host.startswith("127."):
        sys.exit("mutate.py: loopback (127.0.0.0/8) targets only")

    rng = random.Random(a.seed)
    seeds = valid_messages(host, port)
    torture = []
    if a.torture_dir and os.path.isdir(a.torture_dir):
        for name in sorted(os.listdir(a.torture_dir)):
            if name.endswith(".dat"):
                with open(os.path.join(a.torture_dir, name), "rb") as f:
                    torture.append(f.read()[:MAX_DATAGRAM])
    seeds += torture
    datagrams = list(torture)  # each torture message once, unchanged
    while len(datagrams) < a.count:
        datagrams.append(mutate(rng, rng.choice(seeds)))
    datagrams = datagrams[: a.count]

    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
        for i, d in enumerate(datagrams):
            with open(os.path.join(a.dump, f"{i:05d}.bin"), "wb") as f:
                f.write(d)

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    sent = sent_bytes = errors = replies = 0
    start = time.monotonic()
    for i, d in enumerate(datagrams):
        # pace: datagram i leaves no earlier than i / rate seconds after the start
        delay = start + i / a.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            s.sendto(d, (host, port))
            sent += 1
            sent_bytes += len(d)
        except OSError:
            errors += 1  # e.g. ICMP port unreachable reported on a later send
        while True:  # drain replies so they never pile up
            try:
                s.recv(70000)
                replies += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
    secs = time.monotonic() - start
    print(f"mutate: sent {sent} datagrams ({sent_bytes} bytes, {len(torture)} RFC 4475 messages) "
          f"in {secs:.1f}s, {errors} send errors, {replies} replies seen, seed {a.seed}")
    return 0 if sent == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
