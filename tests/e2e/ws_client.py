#!/usr/bin/env python3
"""SIP over WebSocket (RFC 7118) probe for the end-to-end tests (python3-websockets).

  ws_client.py URL [--cafile PEM] [--no-subprotocol] [--count N] [--origin ORIGIN] [--expect-refused STATUS]

Without --no-subprotocol: offers the `sip` subprotocol, checks that the server agreed to it, sends N OPTIONS
(one per WebSocket text message) and prints the status line of each answer; exit 0 when every answer is 200.
With --no-subprotocol: offers none and exits 0 when the server refuses the upgrade (prints the HTTP status).
--origin sends an Origin header (as a browser on that page would); --expect-refused STATUS exits 0 only when the
upgrade is refused with that HTTP status.
Every step is bounded by a timeout.
"""
import argparse
import asyncio
import ssl
import sys
import uuid

import websockets

TIMEOUT = 5


def options(url, cseq, transport):
    target = url.split("://", 1)[1].split("/", 1)[0]
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} df7jal23ls0d.invalid;branch=z9hG4bK-{uuid.uuid4().hex};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@pbx.test>;tag=e2e\r\n"
        f"To: <sip:{target}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@e2e\r\n"
        f"CSeq: {cseq} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def refusal_status(exc):
    status = getattr(exc, "status_code", None)  # websockets < 11
    if status is None and getattr(exc, "response", None) is not None:
        status = getattr(exc.response, "status_code", None)  # websockets >= 11
    return status


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--cafile")
    ap.add_argument("--no-subprotocol", action="store_true")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--origin")
    ap.add_argument("--expect-refused", type=int)
    a = ap.parse_args()
    expect_refused = a.expect_refused or (400 if a.no_subprotocol else None)
    ctx = None
    if a.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=a.cafile)
    subprotocols = None if a.no_subprotocol else ["sip"]
    transport = "WSS" if ctx else "WS"
    try:
        ws = await asyncio.wait_for(
            websockets.connect(a.url, subprotocols=subprotocols, ssl=ctx, open_timeout=TIMEOUT, origin=a.origin),
            TIMEOUT,
        )
    except Exception as e:  # noqa: BLE001 — any refusal counts; print what it was
        status = refusal_status(e)
        print(f"refused: HTTP {status}" if status else f"refused: {type(e).__name__}: {e}")
        return 0 if expect_refused is not None and status == expect_refused else 1
    if expect_refused is not None:
        print(f"upgrade accepted (expected a refusal with HTTP {expect_refused})")
        await ws.close()
        return 1
    if ws.subprotocol != "sip":
        print(f"server chose subprotocol {ws.subprotocol!r}, not 'sip'")
        return 1
    ok = True
    for cseq in range(1, a.count + 1):
        await ws.send(options(a.url, cseq, transport))
        resp = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if isinstance(resp, bytes):
            resp = resp.decode("utf-8", "replace")
        line = resp.split("\r\n", 1)[0]
        print(line)
        ok = ok and line.startswith("SIP/2.0 200") and f"CSeq: {cseq} OPTIONS" in resp
    await asyncio.wait_for(ws.close(), TIMEOUT)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
