#!/usr/bin/env python3
"""Write a pcap of G.711 u-law RTP (20 ms, 160 bytes a packet) that sipp's play_pcap_audio replays.

usage: make_g711_pcap.py ULAW_FILE OUT.pcap
ULAW_FILE is raw 8 kHz u-law audio (e.g. `sox -n -r 8000 -c 1 -t ul tone.ul synth 5 sine 1000`).
"""
import struct
import sys


def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    payload = open(argv[1], "rb").read()
    with open(argv[2], "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(len(payload) // 160):
            rtp = struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x5EED) + payload[i * 160:(i + 1) * 160]
            udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
            t = i * 20000
            out.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(frame), len(frame)))
            out.write(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
