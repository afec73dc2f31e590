#!/usr/bin/env python3
"""Ring groups and call queues through the REST API and the console's Groups & queues page: add, show, change,
remove, stats, validation with the CLI's own messages, read tokens refused, changes audited, the CLI sees what the
API wrote.
usage: office_api.py PORT DATA_DIR PALISADE_BIN"""

import json
import subprocess
import sys

from console_client import Client, totp

port, data, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args):
    r = subprocess.run([binary, *args, "--data", data], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr.strip()


def cli_error(*args):
    rc, _, err = cli(*args)
    assert rc != 0, args
    return err.removeprefix("error: ")


write = json.loads(cli("admin", "token", "create", "w", "--scope", "write", "--json")[1])["token"]
read = json.loads(cli("admin", "token", "create", "r", "--scope", "read", "--json")[1])["token"]
W = Client("127.0.0.1", port, token=write)
R = Client("127.0.0.1", port, token=read)
for n in ("201", "202", "203"):
    W.json("POST", "/api/v1/extensions", {"number": n})

# ---- ring groups
st, body, _, _ = W.json("POST", "/api/v1/groups", {"number": "600", "members": ["201", "202"], "strategy": "order",
                                                   "ring_seconds": 15, "fallback": "ext:203"})
check(st == 201 and body["members"] == ["201", "202"] and body["strategy"] == "order"
      and body["fallback"] == "ext:203", f"POST /groups: 201 ({st} {body})")
st, body, _, _ = W.json("POST", "/api/v1/groups", {"number": "601", "members": ["201", "201"]})
check(st == 400 and body["error"] == cli_error("group", "add", "601", "--members", "201,201"),
      f"a member listed twice: 400 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/groups", {"number": "600", "members": ["201"]})
check(st == 409 and body["error"] == cli_error("group", "add", "600", "--members", "201"),
      f"a taken group number: 409 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/groups", {"number": "602", "members": ["201"], "colour": "red"})
check(st == 422, "an unknown group field: 422")
st, _, _, _ = R.json("POST", "/api/v1/groups", {"number": "603", "members": ["201"]})
check(st == 403, "a read token may not add a group: 403")
st, body, _, _ = R.json("GET", "/api/v1/groups")
check(st == 200 and [g["number"] for g in body["items"]] == ["600"], "GET /groups (read token)")
st, body, _, _ = W.json("PATCH", "/api/v1/groups/600", {"strategy": "round-robin", "members": ["203", "201"]})
check(st == 200 and body["strategy"] == "round-robin" and body["members"] == ["203", "201"]
      and body["ring_seconds"] == 15, f"PATCH /groups/600: only the fields given change ({body})")
rc, out, _ = cli("group", "show", "600", "--json")
check(rc == 0 and json.loads(out)["members"] == ["203", "201"], "the CLI sees the change")
st, body, _, _ = W.json("GET", "/api/v1/groups/699")
check(st == 404, "GET an unknown group: 404")

# ---- queues
st, body, _, _ = W.json("POST", "/api/v1/queues", {"number": "700", "agents": ["201", "202"], "max_wait": 120})
check(st == 201 and [a["agent"] for a in body["agents"]] == ["201", "202"] and body["max_wait_secs"] == 120
      and body["strategy"] == "longest-idle" and body["music"] == "default", f"POST /queues: 201 ({body})")
st, body, _, _ = W.json("POST", "/api/v1/queues", {"number": "600", "agents": ["201"]})
check(st == 409 and body["error"] == cli_error("queue", "add", "600", "--agents", "201"),
      f"a ring group's number for a queue: 409 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/queues", {"number": "701", "agents": ["201"], "max_wait": 2})
check(st == 400 and body["error"] == cli_error("queue", "add", "701", "--agents", "201", "--max-wait", "2"),
      f"a too short max wait: 400 with the CLI's message ({body})")
cli("queue", "logout", "700", "202")
st, body, _, _ = W.json("PATCH", "/api/v1/queues/700", {"strategy": "all"})
check(st == 200 and body["strategy"] == "all" and body["agents"][1] == {"agent": "202", "logged_in": False},
      f"PATCH /queues/700 keeps the agents' login state ({body})")
st, body, _, _ = R.json("GET", "/api/v1/queues")
check(st == 200 and [q["number"] for q in body["items"]] == ["700"], "GET /queues (read token)")
st, body, _, _ = R.json("GET", "/api/v1/queues/700/stats")
check(st == 200 and (body["waiting"], body["answered"], body["abandoned"], body["timeout"]) == (0, 0, 0, 0),
      f"GET /queues/700/stats ({body})")

# ---- removal and audit
st, body, _, _ = W.json("DELETE", "/api/v1/queues/700")
check(st == 200 and body["removed"]["number"] == "700", "DELETE /queues/700")
st, body, _, _ = W.json("DELETE", "/api/v1/groups/600")
check(st == 200 and body["removed"]["number"] == "600", "DELETE /groups/600")
rc, out, _ = cli("group", "list", "--json")
check(rc == 0 and json.loads(out) == [], "the CLI sees no group")
rc, out, _ = cli("audit", "--json")
actions = [e["action"] for e in json.loads(out)]
for a in ("group.add", "group.update", "group.remove", "queue.add", "queue.update", "queue.remove"):
    check(a in actions, f"audited: {a}")

# ---- the console's page
root = json.loads(cli("admin", "add", "root", "--json")[1])
secret = json.loads(cli("admin", "totp", "root", "--json")[1])["secret"]
b = Client("127.0.0.1", port)
b.login("root", root["password"], totp(secret))
csrf = b.csrf("/office")
res, page = b.request("POST", "/office/groups", form={"csrf": csrf, "number": "610", "members": "201,202",
                                                     "strategy": "order", "ring_seconds": "", "fallback": "hangup"})
check(res.status == 200 and b"Added ring group 610" in page and b"201, 202" in page, "console: add a ring group")
res, page = b.request("POST", "/office/groups", form={"csrf": csrf, "number": "611", "members": "201,201"})
check(res.status == 400 and cli_error("group", "add", "611", "--members", "201,201").encode() in page,
      "console: a bad group gets 400 with the CLI's message")
res, page = b.request("POST", "/office/queues", form={"csrf": csrf, "number": "710", "agents": "202,203",
                                                     "strategy": "round-robin", "max_wait": "90", "fallback": "ext:201"})
check(res.status == 200 and b"Added queue 710" in page and b"round-robin" in page, "console: add a queue")
rc, out, _ = cli("queue", "show", "710", "--json")
check(rc == 0 and json.loads(out)["fallback"] == "ext:201", "the CLI sees the console's queue")
res, page = b.request("POST", "/office/queues/remove", form={"csrf": "stale", "name": "710"})
check(res.status == 403, "console: a stale CSRF token is refused")
res, page = b.request("POST", "/office/queues/remove", form={"csrf": csrf, "name": "710"})
check(res.status == 200 and b"Removed queue 710" in page, "console: remove a queue")
res, page = b.request("POST", "/office/groups/remove", form={"csrf": csrf, "name": "610"})
check(res.status == 200 and b"Removed ring group 610" in page, "console: remove a ring group")
rc, out, _ = cli("audit", "--json")
check(any(e["action"] == "queue.add" and e["actor"] == "admin:root" for e in json.loads(out)),
      "audited: queue.add by admin:root")

if failures:
    print(f"{len(failures)} check(s) failed", flush=True)
    sys.exit(1)
