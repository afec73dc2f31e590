#!/usr/bin/env python3
"""A bounded UDP flood of SIP REGISTER requests from one loopback source (benches/guard/run.sh).

  flood.py --src 127.0.0.66 --dst 127.0.0.1:5070 --rate 50000 --count 500000

Every request is a complete unauthenticated REGISTER (~420 bytes; new Call-ID and branch per packet, as a
scanner would send), so a server that parses it does the full work. Packets go out in batches every 1 ms at
the given aggregate rate; the flood stops after --count packets or 1.5 x count / rate + 2 s, whichever comes
first. Prints one JSON line: sent, seconds, achieved rate, own CPU. Loopback only.
"""
import argparse
import json
import resource
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    a = ap.parse_args()
    host, port = a.dst.rsplit(":", 1)
    for h in (a.src, host):
        if socket.inet_aton(h)[0] != 127:
            sys.exit(f"refusing non-loopback address {h}")
    if not (1 <= a.rate <= 500_000 and 1 <= a.count <= 10_000_000):
        sys.exit("bounds: rate 1..500000, count 1..10000000")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.src, 0))
    s.setblocking(False)
    sport = s.getsockname()[1]
    dst = (host, int(port))
    # 512 distinct requests, cycled (building one per packet would cost the generator more than the server)
    msgs = []
    for i in range(512):
        msgs.append((
            f"REGISTER sip:{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {a.src}:{sport};branch=z9hG4bKflood{i:06d};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{1000 + i}@{host}>;tag=fl{i:06d}\r\n"
            f"To: <sip:{1000 + i}@{host}>\r\n"
            f"Call-ID: flood-{i:06d}-{sport}@{a.src}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{1000 + i}@{a.src}:{sport}>\r\n"
            "Expires: 3600\r\n"
            "User-Agent: palisade-bench-flood\r\n"
            "Content-Length: 0\r\n\r\n").encode())
    sent = full = 0
    batch_dt = 0.001
    t0 = time.monotonic()
    deadline = t0 + 1.5 * a.count / a.rate + 2
    k = 0
    while sent + full < a.count:
        now = time.monotonic()
        if now > deadline:
            break
        due = min(a.count, int((now - t0) * a.rate) + 1)
        while sent + full < due:
            try:
                s.sendto(msgs[k & 511], dst)
                sent += 1
            except BlockingIOError:
                full += 1
            k += 1
        nxt = t0 + (sent + full) / a.rate
        pause = nxt - time.monotonic()
        if pause > 0:
            time.sleep(max(pause, batch_dt))
    el = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"sent": sent, "not_sent_buffer_full": full, "seconds": round(el, 3),
                      "rate": round(sent / el), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3)}))


if __name__ == "__main__":
    main()
