#!/usr/bin/env python3
"""Trunks, outbound rules and DIDs through the API and the console: add, change, remove, validation, audit.
usage: console_routing.py PORT DATA_DIR PALISADE_BIN"""

import json
import subprocess
import sys

from console_client import Client, totp

port, data, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
failures = []
SECRET = "Pr0vider-Secret-4242"


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
W.json("POST", "/api/v1/extensions", {"number": "500"})
W.json("POST", "/api/v1/extensions", {"number": "501"})

# ---- trunks
st, body, _, raw = W.json("POST", "/api/v1/trunks", {"name": "carrier", "host": "192.0.2.10", "username": "acct",
                                                     "password": SECRET, "sources": ["192.0.2.0/28"],
                                                     "max_calls": 10})
check(st == 201 and body["name"] == "carrier" and body["password"] == "set" and body["max_calls"] == 10
      and SECRET.encode() not in raw, f"POST /trunks: 201, the password only 'set' ({st})")
st, body, _, raw = W.json("GET", "/api/v1/trunks/carrier")
check(st == 200 and body["sources"] == ["192.0.2.0/28"] and SECRET.encode() not in raw, "GET /trunks/carrier")
st, body, _, _ = W.json("POST", "/api/v1/trunks", {"name": "carrier", "host": "192.0.2.11"})
check(st == 409 and body["error"] == cli_error("trunk", "add", "carrier", "--host", "192.0.2.11"),
      f"a taken trunk name: 409 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/trunks", {"name": "bad name!", "host": "192.0.2.11"})
check(st == 400 and body["error"] == cli_error("trunk", "add", "bad name!", "--host", "192.0.2.11"),
      f"an invalid trunk name: 400 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/trunks", {"name": "x", "host": "h", "colour": "red"})
check(st == 422, "an unknown trunk field: 422")
st, body, _, _ = R.json("POST", "/api/v1/trunks", {"name": "other", "host": "192.0.2.12"})
check(st == 403, "a read token may not add a trunk: 403")
st, body, _, raw = W.json("PATCH", "/api/v1/trunks/carrier", {"caller_id": "+4930999", "password": "N3w-" + SECRET})
check(st == 200 and body["caller_id"] == "+4930999" and SECRET.encode() not in raw, "PATCH /trunks/carrier")
rc, out, _ = cli("trunk", "show", "carrier", "--json")
check(rc == 0 and json.loads(out)["caller_id"] == "+4930999", "the CLI sees the change")
st, body, _, _ = W.json("PATCH", "/api/v1/trunks/carrier", {"srtp": "bogus"})
check(st == 400 and body["error"] == cli_error("trunk", "set", "carrier", "--srtp", "bogus"),
      f"a bad trunk value: 400 with the CLI's message ({body})")
st, body, _, _ = W.json("PATCH", "/api/v1/trunks/carrier", {})
check(st == 400 and "nothing to change" in body["error"], "an empty change: 400")
st, body, _, _ = W.json("PATCH", "/api/v1/trunks/nope", {"caller_id": "1"})
check(st == 404 and "does not exist" in body["error"], "PATCH an unknown trunk: 404")
W.json("POST", "/api/v1/trunks", {"name": "backup", "host": "192.0.2.20"})

# ---- outbound rules
st, body, _, _ = W.json("POST", "/api/v1/rules", {"name": "intl", "prefix": "00", "trunks": ["carrier", "backup"]})
check(st == 201 and body["name"] == "intl" and body["position"] == 1, "POST /rules: 201")
st, body, _, _ = W.json("POST", "/api/v1/rules", {"name": "bad", "prefix": "0x", "trunks": ["carrier"]})
check(st == 400 and body["error"] == cli_error("rule", "add", "bad", "--prefix", "0x", "--trunks", "carrier"),
      f"a bad rule: 400 with the CLI's message ({body})")
st, body, _, _ = W.json("POST", "/api/v1/rules", {"name": "national", "prefix": "0", "trunks": ["carrier"]})
st, body, _, _ = W.json("PATCH", "/api/v1/rules/national", {"prefix": "01", "strip": 1, "position": 1})
check(st == 200 and body["prefix"] == "01" and body["strip"] == 1 and body["position"] == 1,
      f"PATCH /rules/national: changed and moved ({body})")
rc, out, _ = cli("rule", "list", "--json")
check([(r["name"], r["prefix"]) for r in json.loads(out)] == [("national", "01"), ("intl", "00")],
      "the CLI lists the rules in their new order")
st, body, _, _ = W.json("PATCH", "/api/v1/rules/national", {"position": 9})
check(st == 400 and "position" in body["error"], f"a bad position: 400 ({body})")
st, body, _, _ = W.json("DELETE", "/api/v1/rules/national")
check(st == 200 and body["removed"]["name"] == "national", "DELETE /rules/national")
st, body, _, _ = W.json("DELETE", "/api/v1/rules/national")
check(st == 404 and body["error"] == cli_error("rule", "remove", "national"), "remove it again: 404, the CLI's message")

# ---- DIDs
st, body, _, _ = W.json("POST", "/api/v1/dids", {"number": "+4930123456", "trunk": "carrier", "extension": "500"})
check(st == 201 and body["number"] == "+4930123456" and body["extension"] == "500", "POST /dids: 201")
st, body, _, _ = W.json("POST", "/api/v1/dids", {"number": "12ab", "trunk": "carrier", "extension": "500"})
check(st == 400 and body["error"] == cli_error("did", "add", "12ab", "--trunk", "carrier", "--ext", "500"),
      f"a bad DID: 400 with the CLI's message ({body})")
st, body, _, _ = W.json("PATCH", "/api/v1/dids/+4930123456", {"extension": "501", "trunk": "backup"})
check(st == 200 and body["extension"] == "501" and body["trunk"] == "backup", "PATCH /dids/NUMBER")
st, body, _, _ = W.json("PATCH", "/api/v1/dids/+4930123456", {"extension": "999"})
check(st == 404 and "extension 999 does not exist" in body["error"], f"PATCH to an unknown extension: 404 ({body})")
rc, out, _ = cli("did", "list", "--json")
check([(d["number"], d["trunk"], d["extension"]) for d in json.loads(out)] == [("+4930123456", "backup", "501")],
      "a refused change keeps the DID as it was")
st, body, _, _ = W.json("DELETE", "/api/v1/dids/+4930123456")
check(st == 200 and body["removed"]["number"] == "+4930123456", "DELETE /dids/NUMBER")
W.json("POST", "/api/v1/dids", {"number": "+4930777", "trunk": "carrier", "extension": "500"})
st, body, _, _ = W.json("DELETE", "/api/v1/trunks/carrier")
check(st == 200 and body["dids_removed"] == ["+4930777"] and body["rules_naming_it"] == ["intl"]
      and body["warnings"], f"DELETE /trunks/carrier: its DIDs go, the rules naming it are reported ({body})")
st, body, _, _ = W.json("DELETE", "/api/v1/trunks/carrier")
check(st == 404, "remove it again: 404")

# ---- the console's forms
root = json.loads(cli("admin", "add", "root", "--json")[1])
secret = json.loads(cli("admin", "totp", "root", "--json")[1])["secret"]
b = Client("127.0.0.1", port)
b.login("root", root["password"], totp(secret))
csrf = b.csrf("/routing")
res, page = b.request("POST", "/routing/trunks", form={"csrf": csrf, "name": "sip2", "host": "198.51.100.5",
                                                      "username": "u2", "password": SECRET, "transport": "udp",
                                                      "srtp": "disabled"})
check(res.status == 200 and b"Added trunk sip2" in page and SECRET.encode() not in page,
      "console: add a trunk (the password not shown back)")
res, page = b.request("POST", "/routing/trunks/set", form={"csrf": csrf, "name": "sip2", "caller_id": "+4940111"})
check(res.status == 200 and b"Changed trunk sip2" in page, "console: change a trunk")
res, page = b.request("POST", "/routing/trunks", form={"csrf": csrf, "name": "sip2", "host": "h"})
check(res.status == 400 and b"already exists" in page, "console: a taken name is refused with the CLI's message")
res, page = b.request("POST", "/routing/rules", form={"csrf": csrf, "name": "all", "prefix": "", "trunks": "sip2"})
check(res.status == 200 and b"Added outbound rule all" in page, "console: add a rule")
res, page = b.request("POST", "/routing/rules", form={"csrf": csrf, "name": "r2", "min_len": "x", "trunks": "sip2"})
check(res.status == 400 and b"is not a number" in page,
      "console: a bad number is refused")
res, page = b.request("POST", "/routing/dids", form={"csrf": csrf, "number": "+4940222", "trunk": "sip2",
                                                    "extension": "500"})
check(res.status == 200 and b"Added DID +4940222" in page, "console: add a DID")
res, page = b.request("POST", "/routing/dids/remove", form={"csrf": csrf, "name": "+4940222"})
check(res.status == 200 and b"Removed DID +4940222" in page, "console: remove a DID")
res, page = b.request("POST", "/routing/rules/remove", form={"csrf": csrf, "name": "all"})
check(res.status == 200 and b"Removed outbound rule all" in page, "console: remove a rule")
res, page = b.request("POST", "/routing/trunks/remove", form={"csrf": "stale", "name": "sip2"})
check(res.status == 403, "console: a stale CSRF token is refused")
res, page = b.request("POST", "/routing/trunks/remove", form={"csrf": csrf, "name": "sip2"})
check(res.status == 200 and b"Removed trunk sip2" in page, "console: remove a trunk")

# ---- audit: every change, never the password
st, body, _, raw = R.json("GET", "/api/v1/audit?limit=500")
actions = [(e["actor"], e["action"]) for e in body["items"]]
for who in ["token:w", "admin:root"]:
    for a in ["trunk.add", "trunk.update", "trunk.remove", "rule.add", "rule.remove", "did.add", "did.remove"]:
        check((who, a) in actions, f"audit holds {a} by {who}")
for a in ["rule.update", "did.update"]:
    check(("token:w", a) in actions, f"audit holds {a} by token:w")
check(SECRET.encode() not in raw, "no trunk password in the audit log")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
