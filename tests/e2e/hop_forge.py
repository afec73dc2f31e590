#!/usr/bin/env python3
"""Sends one forged internal-hop INVITE (docs/cluster.md) to a Palisade node and prints the final status code.

    hop_forge.py NODE_HOST:PORT SOURCE_IP CALLEE NODE_NAME [--secret HEX_SECRET_TEXT] [--age S]

The Request-URI carries `palisade-hop=NODE_NAME~UNIX_SECS~HMAC`: with --secret the HMAC-SHA256 is computed the way
nodes compute it (over "palisade-hop-v1\\0NODE\\0SECS\\0CALLEE" under the secret's text), else 64 random hex digits.
SOURCE_IP is the loopback address the request is sent from (any 127.0.0.0/8 address can be bound). Prints the
first final (>= 200) status code; exit 0 when one arrived within 5 s, 2 otherwise.
"""
import hashlib
import hmac
import os
import random
import socket
import sys
import time


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    target, source, callee, node = argv[1], argv[2], argv[3], argv[4]
    secret = argv[argv.index("--secret") + 1] if "--secret" in argv else None
    age = int(argv[argv.index("--age") + 1]) if "--age" in argv else 0
    host, port = target.rsplit(":", 1)
    secs = int(time.time()) - age
    if secret is None:
        mac = os.urandom(32).hex()
    else:
        msg = b"palisade-hop-v1\0" + node.encode() + b"\0" + str(secs).encode() + b"\0" + callee.encode()
        mac = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sport = sock.getsockname()[1]
    branch = "z9hG4bK" + str(random.getrandbits(48))
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n" % (source, source)
    )
    req = (
        f"INVITE sip:{callee}@{host}:{port};palisade-hop={node}~{secs}~{mac} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{sport};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:201@{host}>;tag=forged{random.getrandbits(32)}\r\n"
        f"To: <sip:{callee}@{host}>\r\n"
        f"Call-ID: forged-{random.getrandbits(64)}@{source}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:201@{source}:{sport}>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
    )
    sock.sendto(req.encode(), (host, int(port)))
    sock.settimeout(0.5)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            continue
        status = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        code = int(status.split()[1])
        if code >= 200:
            print(code)
            return 0
    print("timeout")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
