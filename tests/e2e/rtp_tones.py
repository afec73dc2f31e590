#!/usr/bin/env python3
"""Which tones a G.711 RTP stream in a capture carries, block by block (pure Python: no numpy needed).

usage: rtp_tones.py PCAP --src LO-HI --dst LO-HI [--after T] [--before T] --freqs F1,F2,... [--block MS]

Reads the RTP (PCMU or PCMA) sent from a UDP port in --src to a port in --dst between the epoch times --after and
--before, decodes it, cuts it into blocks (default 100 ms) and, per block, names the strongest of --freqs (a
Goertzel filter each) or "none" when even that one is at silence level. Prints one JSON object:
  {"packets": N, "blocks": {"440": K, "none": K, ...}, "power": {"440": P, ...}, "ssrcs": [..]}
so a test can say "most blocks are 440 Hz and none is 880 Hz"; "power" is each frequency's mean block power (a
sine of amplitude A gives about A*A/4), for mixes where several tones sound at once.
"""
import json
import math
import subprocess
import sys

SILENCE = 16.0 * 40  # a little above media::tone's silence level: G.711 noise of a held stream


def ulaw(b):
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if b & 0x80 else (t - 0x84)


def alaw(b):
    b ^= 0x55
    t = (b & 0x0F) << 4
    seg = (b & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if b & 0x80 else -t


def goertzel(samples, freq):
    w = 2 * math.pi * freq / 8000.0
    c = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + c * s1 - s2
        s2, s1 = s1, s0
    n = len(samples)
    return max(0.0, (s1 * s1 + s2 * s2 - c * s1 * s2) / (n * n))


def rng(text):
    lo, hi = text.split("-")
    return int(lo), int(hi)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    pcap, args = argv[1], argv[2:]
    opts = {"--after": "0", "--before": "2147483000", "--block": "100"}
    for i in range(0, len(args) - 1, 2):
        opts[args[i]] = args[i + 1]
    (slo, shi), (dlo, dhi) = rng(opts["--src"]), rng(opts["--dst"])
    freqs = [float(f) for f in opts["--freqs"].split(",")]
    filt = (
        f"rtp && udp.srcport >= {slo} && udp.srcport <= {shi} && udp.dstport >= {dlo} && udp.dstport <= {dhi}"
        f" && frame.time_epoch > {opts['--after']} && frame.time_epoch < {opts['--before']}"
    )
    out = subprocess.run(
        ["tshark", "-r", pcap, "-o", "rtp.heuristic_rtp:TRUE", "-T", "fields", "-e", "rtp.p_type",
         "-e", "rtp.ssrc", "-e", "rtp.payload", "-Y", filt],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout
    samples, packets, ssrcs = [], 0, set()
    for line in out.splitlines():
        f = line.split()
        if len(f) != 3 or f[0] not in ("0", "8"):
            continue
        decode = ulaw if f[0] == "0" else alaw
        samples.extend(decode(b) for b in bytes.fromhex(f[2].replace(":", "")))
        packets += 1
        ssrcs.add(f[1])
    block = int(opts["--block"]) * 8
    blocks, sums, n = {}, {("%g" % f): 0.0 for f in freqs}, 0
    for i in range(0, len(samples) - block + 1, block):
        chunk = samples[i : i + block]
        powers = [(goertzel(chunk, f), f) for f in freqs]
        n += 1
        for pw, f in powers:
            sums["%g" % f] += pw
        p, f = max(powers)
        name = "none" if p < SILENCE else ("%g" % f)
        blocks[name] = blocks.get(name, 0) + 1
    power = {k: round(v / n, 1) if n else 0 for k, v in sums.items()}
    print(json.dumps({"packets": packets, "blocks": blocks, "power": power, "ssrcs": sorted(ssrcs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
