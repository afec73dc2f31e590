#!/usr/bin/env python3
"""Benchmarks of the web console and REST API (issue 13): list endpoints with 10,000 extensions and 1,000,000
security events (paging), and the dashboard's live stream while 100 events per second are written.

usage: scripts/bench_console.py [PALISADE_BIN]   (default target/release/palisade)
Prints a Markdown table; docs/benchmarks.md holds the figures of a run. Loopback only, bounded in time."""

import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from console_client import Client, totp  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/palisade"
EXTENSIONS = 10_000
EVENTS = 1_000_000
ADMIN_PORT, SIP_PORT = 26390, 26391


def cli(data, *args):
    r = subprocess.run([BIN, *args, "--data", data], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"{args}: {r.stderr}")
    return r.stdout


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client, path, n):
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        res, body = client.request("GET", path)
        times.append((time.perf_counter() - t0) * 1000)
        assert res.status == 200, (path, res.status, body[:200])
        size = len(body)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], size


def main():
    data = tempfile.mkdtemp(prefix="palisade-bench-console.")
    t0 = time.time()
    cli(data, "ext", "add-range", "10000", str(10000 + EXTENSIONS - 1))
    print(f"setup: {EXTENSIONS} extensions in {time.time() - t0:.1f} s", file=sys.stderr)
    db = sqlite3.connect(os.path.join(data, "palisade.db"))
    now = int(time.time() * 1000)
    kinds = [("auth_failure", "wrong_password"), ("auth_failure", "unknown_user"), ("ban", "auth_failures"),
             ("policy_refusal", "country"), ("throttle", "flood")]
    rng = random.Random(13)
    t0 = time.time()
    batch = []
    for i in range(EVENTS):
        k, r = kinds[0] if i % 50 else kinds[rng.randrange(1, len(kinds))]
        # Spread over the last 60 days, oldest first.
        at = now - 60 * 86_400_000 + i * (60 * 86_400_000 // EVENTS)
        batch.append((at, k, r, f"203.0.{(i >> 8) & 255}.{i & 255}:5060", f"u{i % 997}", None))
        if len(batch) == 50_000:
            db.executemany("INSERT INTO security_events (at, kind, reason, source, username, detail) "
                           "VALUES (?, ?, ?, ?, ?, ?)", batch)
            batch.clear()
    db.commit()
    print(f"setup: {EVENTS} events in {time.time() - t0:.1f} s", file=sys.stderr)
    token = json.loads(cli(data, "admin", "token", "create", "bench", "--scope", "read", "--json"))["token"]
    root = json.loads(cli(data, "admin", "add", "root", "--json"))
    secret = json.loads(cli(data, "admin", "totp", "root", "--json"))["secret"]

    srv = subprocess.Popen([BIN, "serve", "--data", data, "--listen", f"udp:127.0.0.1:{SIP_PORT}",
                            "--admin-listen", f"127.0.0.1:{ADMIN_PORT}"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and srv.stdout.readline().strip() != "palisade ready":
            pass
        api = Client("127.0.0.1", ADMIN_PORT, token=token)
        rows = []
        oldest = json.loads(api.request("GET", "/api/v1/events?limit=1")[1])["items"][0]["id"]
        for what, path, n in [
            (f"GET /api/v1/extensions ({EXTENSIONS} items, all)", "/api/v1/extensions", 10),
            ("GET /api/v1/extensions?limit=100 (first page)", "/api/v1/extensions?limit=100", 30),
            ("GET /api/v1/extensions?limit=100&after=15000 (page 51)", "/api/v1/extensions?limit=100&after=15000", 30),
            ("GET /api/v1/events?limit=100 (newest page)", "/api/v1/events?limit=100", 30),
            ("GET /api/v1/events?limit=100&before=… (page 5,000, 500,000 rows deep)",
             f"/api/v1/events?limit=100&before={oldest - 500_000}", 30),
            ("GET /api/v1/events?limit=100&before=… (last page)", "/api/v1/events?limit=100&before=150", 30),
            ("GET /api/v1/events?kind=ban&limit=100 (1 in 250 rows)", "/api/v1/events?kind=ban&limit=100", 10),
            ("GET /api/v1/events?since=1h&limit=100", "/api/v1/events?since=1h&limit=100", 30),
            ("GET /api/v1/registrations", "/api/v1/registrations", 30),
        ]:
            p50, p95, size = timed(api, path, n)
            rows.append((what, n, p50, p95, size))

        # The dashboard: one page load, then its event stream while 100 events/s are written for 20 s.
        b = Client("127.0.0.1", ADMIN_PORT)
        res, _ = b.login("root", root["password"], totp(secret))
        assert res.status == 303, res.status
        p50, p95, size = timed(b, "/", 10)
        rows.append(("GET / (dashboard page, 1,000,000 events stored)", 10, p50, p95, size))
        rows.append(("GET /extensions (console page, 10,000 extensions: the first 200 shown)", 5, *timed(b, "/extensions", 5)))

        import http.client
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", ADMIN_PORT, context=ctx, timeout=10)
        conn.request("GET", "/api/v1/stream", headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        delays = []
        stop = time.time() + 24

        def reader():
            while time.time() < stop:
                try:
                    line = resp.fp.readline()
                except OSError:
                    return
                if not line:
                    return
                if line.startswith(b"data:") and b'"security"' in line:
                    ev = json.loads(line[5:])
                    if ev.get("kind") == "bench":
                        delays.append(time.time() * 1000 - ev["at"])

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        time.sleep(1.5)
        writer = sqlite3.connect(os.path.join(data, "palisade.db"), timeout=5)
        cpu0, w0 = cpu_seconds(srv.pid), time.time()
        written = 0
        for i in range(2000):  # 20 s at 100/s
            target = w0 + i / 100
            time.sleep(max(0, target - time.time()))
            writer.execute("INSERT INTO security_events (at, kind, reason, source) VALUES (?, 'bench', 'load', ?)",
                           (int(time.time() * 1000), f"198.51.100.{i % 250}:5060"))
            writer.commit()
            written += 1
        time.sleep(2)
        cpu = cpu_seconds(srv.pid) - cpu0
        elapsed = time.time() - w0
        th.join(timeout=5)
        conn.close()
        delays.sort()

        print(f"\nMachine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; binary {BIN}\n")
        print("| request | n | median ms | p95 ms | bytes |")
        print("|---|---|---|---|---|")
        for what, n, p50, p95, size in rows:
            print(f"| {what} | {n} | {p50:.1f} | {p95:.1f} | {size:,} |")
        print()
        print(f"Live stream: {written} events written at 100/s for {elapsed - 2:.0f} s; {len(delays)} received by the SSE "
              f"client; delay median {statistics.median(delays):.0f} ms, p95 {delays[int(len(delays) * 0.95) - 1]:.0f} ms, "
              f"max {delays[-1]:.0f} ms; server CPU {cpu / elapsed * 100:.1f} % of one core meanwhile.")
    finally:
        srv.terminate()
        srv.wait(timeout=10)
        subprocess.run(["rm", "-rf", data])


if __name__ == "__main__":
    main()
