#!/usr/bin/env python3
"""How many 100 ms blocks of a WAV file are a pure tone of a given frequency (pure Python, Goertzel).

usage: tone_blocks.py WAV FREQ [FREQ...]

Prints one JSON object {"FREQ": blocks, ...}: a block counts for FREQ when that frequency carries at least half of
the block's energy (a sine does; speech, silence and other tones do not). Multi-channel files use the first channel.
"""
import json
import math
import struct
import sys
import wave


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    w = wave.open(argv[1], "rb")
    rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    if width != 2:
        sys.exit(f"tone_blocks: {argv[1]}: {8 * width}-bit samples, expected 16")
    raw = w.readframes(w.getnframes())
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)[::channels]
    n = rate // 10
    freqs = [float(f) for f in argv[2:]]
    coeffs = [2 * math.cos(2 * math.pi * f / rate) for f in freqs]
    counts = {f"{f:g}": 0 for f in freqs}
    for start in range(0, len(samples) - n + 1, n):
        block = samples[start : start + n]
        energy = sum(x * x for x in block)
        if energy < n * 100:  # silence
            continue
        for f, c in zip(freqs, coeffs):
            s1 = s2 = 0.0
            for x in block:
                s1, s2 = x + c * s1 - s2, s1
            power = s1 * s1 + s2 * s2 - c * s1 * s2
            if power / (energy * n / 2) >= 0.5:
                counts[f"{f:g}"] += 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
