#!/usr/bin/env python3
"""The REST API end to end: every resource, every error status, token scopes, the OpenAPI document.
usage: console_api.py PORT DATA_DIR PALISADE_BIN"""

import json
import subprocess
import sys

from console_client import Client

port, data, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args):
    r = subprocess.run([binary, *args, "--data", data], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr.strip()


def cli_error(*args):
    rc, _, err = cli(*args)
    assert rc != 0, args
    return err.removeprefix("error: ")


write = json.loads(cli("admin", "token", "create", "w", "--scope", "write", "--json")[1])["token"]
read = json.loads(cli("admin", "token", "create", "r", "--scope", "read", "--expires", "1", "--json")[1])["token"]
W = Client("127.0.0.1", port, token=write)
R = Client("127.0.0.1", port, token=read)

# ---- authentication and scopes
st, body, res, _ = W.json("GET", "/api/v1/extensions", token=None)
check(st == 401 and "bearer token" in body["error"] and res.headers.get("WWW-Authenticate") == "Bearer",
      "no token: 401 with WWW-Authenticate: Bearer")
st, body, _, _ = W.json("GET", "/api/v1/extensions", token="pal_wrong")
check(st == 401, "unknown token: 401")
st, _, _, _ = R.json("GET", "/api/v1/extensions")
check(st == 200, "read token may GET")
st, body, _, _ = R.json("POST", "/api/v1/extensions", {"number": "300"})
check(st == 403 and "read scope" in body["error"], "read token may not POST: 403")
st, _, _, _ = R.json("DELETE", "/api/v1/blacklist/192.0.2.1")
check(st == 403, "read token may not DELETE: 403")

# ---- extensions
st, body, _, _ = W.json("POST", "/api/v1/extensions", {"number": "300", "name": "Ann"})
check(st == 201 and body["number"] == "300" and len(body["password"]) >= 10 and body["voicemail_pin"],
      "create extension: 201 with credentials once")
st, body, _, _ = W.json("POST", "/api/v1/extensions", {"number": "300"})
check(st == 409 and body["error"] == cli_error("ext", "add", "300"), "duplicate extension: 409 with the CLI's message")
st, body, _, _ = W.json("POST", "/api/v1/extensions", {"number": "12a"})
check(st == 400 and body["error"] == cli_error("ext", "add", "12a"), "invalid number: 400 with the CLI's message")
st, body, _, _ = W.json("POST", "/api/v1/extensions", {"numbr": "301"})
check(st == 422 and "unknown field" in body["error"], "wrong JSON shape: 422")
res, raw = W.request("POST", "/api/v1/extensions", body="{not json", headers={"Content-Type": "application/json"})
check(res.status == 400 and "error" in json.loads(raw), "not JSON: 400")
res, raw = W.request("POST", "/api/v1/extensions", body='{"number": "302"}')
check(res.status == 415 and "error" in json.loads(raw), "no JSON content type: 415")
st, body, _, _ = W.json("GET", "/api/v1/extensions")
check(st == 200 and [e["number"] for e in body["items"]] == ["300"], "list extensions")
W.json("POST", "/api/v1/extensions", {"number": "303"})
st, body, _, _ = W.json("GET", "/api/v1/extensions?limit=1")
check(st == 200 and [e["number"] for e in body["items"]] == ["300"] and body["next_after"] == "300", "extensions: page 1")
st, body, _, _ = W.json("GET", "/api/v1/extensions?limit=1&after=300")
check(st == 200 and [e["number"] for e in body["items"]] == ["303"] and body["next_after"] is None, "extensions: page 2")
W.json("DELETE", "/api/v1/extensions/303")
st, body, _, _ = W.json("GET", "/api/v1/extensions/300")
check(st == 200 and body["display_name"] == "Ann" and "password" not in json.dumps(body).lower().replace(
    "password_changed_at", ""), "get extension, no secrets")
st, body, _, _ = W.json("PATCH", "/api/v1/extensions/300", {"enabled": False, "lan_only": True})
check(st == 200 and body["enabled"] is False and body["lan_only"] is True, "patch extension")
st, body, _, _ = W.json("PATCH", "/api/v1/extensions/300", {"srtp": "bogus"})
check(st == 400 and body["error"] == cli_error("ext", "set", "300", "--srtp", "bogus"),
      "patch with a bad value: 400 with the CLI's message")
st, body, _, _ = W.json("PATCH", "/api/v1/extensions/300", {})
check(st == 400 and body["error"] == cli_error("ext", "set", "300"), "empty patch: 400 with the CLI's message")
st, body, _, _ = W.json("GET", "/api/v1/extensions/999")
check(st == 404 and body["error"] == cli_error("ext", "show", "999"), "unknown extension: 404 with the CLI's message")
st, body, _, _ = W.json("POST", "/api/v1/extensions/300/reset-password")
check(st == 200 and len(body["password"]) >= 10, "reset-password")
st, body, _, _ = W.json("POST", "/api/v1/extensions/300/reset-pin", {"pin": "1111"})
check(st == 400 and body["error"] == cli_error("ext", "reset-pin", "300", "--pin", "1111"), "trivial PIN refused: 400")
st, body, _, _ = W.json("POST", "/api/v1/extensions/300/reset-pin")
check(st == 200 and body["voicemail_pin"].isdigit(), "reset-pin")
st, body, _, _ = W.json("POST", "/api/v1/extensions", {"number": "301"})
st, body, _, _ = W.json("DELETE", "/api/v1/extensions/301")
check(st == 200 and body["removed"] == "301", "delete extension")
st, body, _, _ = W.json("DELETE", "/api/v1/extensions/301")
check(st == 404, "delete again: 404")

# ---- live state and records
for path in ["/api/v1/registrations", "/api/v1/calls", "/api/v1/cdr", "/api/v1/rules", "/api/v1/trunks", "/api/v1/dids",
             "/api/v1/blacklist", "/api/v1/whitelist", "/api/v1/voicemail/300"]:
    st, body, _, _ = R.json("GET", path)
    check(st == 200 and isinstance(body["items"], list), f"GET {path}: items")
for path in ["/api/v1/security", "/api/v1/policy", "/api/v1/countries", "/api/v1/hours", "/api/v1/cert"]:
    st, body, _, _ = R.json("GET", path)
    check(st == 200 and isinstance(body, dict), f"GET {path}")
res, raw = R.request("GET", "/api/v1/cdr?format=csv")
check(res.status == 200 and res.headers["Content-Type"].startswith("text/csv") and raw.startswith(b"id,call_id,caller"),
      "CDR as CSV")
st, body, _, _ = R.json("GET", "/api/v1/cdr?limit=0")
check(st == 400 and body["error"] == cli_error("cdr", "--limit", "0"), "CDR bad limit: 400 with the CLI's message")
st, body, _, _ = R.json("GET", "/api/v1/cdr?since=yesterday")
check(st == 400 and body["error"] == cli_error("cdr", "--since", "yesterday"), "CDR bad since: 400 with the CLI's message")
st, body, _, _ = R.json("GET", "/api/v1/events?limit=2")
check(st == 200 and len(body["items"]) == 2, "events: a page of 2")
ids = [e["id"] for e in body["items"]]
st, body2, _, _ = R.json("GET", f"/api/v1/events?limit=2&before={body['next_before']}")
check(st == 200 and all(e["id"] < min(ids) for e in body2["items"]), "events: the next page is older")
st, body, _, _ = R.json("GET", "/api/v1/events?kind=console_auth_failure")
check(st == 200 and len(body["items"]) >= 2 and all(e["kind"] == "console_auth_failure" for e in body["items"]),
      "events: filter by kind (the 401s above are there)")
st, body, _, _ = R.json("GET", "/api/v1/cert")
check(st == 200 and body["sha256_fingerprint"] and body["days_left"] > 0, "cert")

# ---- IP lists
st, body, _, _ = W.json("POST", "/api/v1/blacklist", {"prefix": "198.51.100.0/24", "expires": 3600, "note": "scanner"})
check(st == 201 and body["entry"]["net"] == "198.51.100.0/24" and body["entry"]["expires_in_s"] > 3500, "blacklist add")
st, body, _, _ = W.json("POST", "/api/v1/blacklist", {"prefix": "198.51.100.300"})
check(st == 400 and body["error"] == cli_error("blacklist", "add", "198.51.100.300"), "bad prefix: 400 with the CLI's message")
st, body, _, _ = W.json("POST", "/api/v1/blacklist", {"prefix": "192.0.2.9", "expires": 0})
check(st == 400 and body["error"] == cli_error("blacklist", "add", "192.0.2.9", "--expires", "0"), "bad expiry: 400")
st, body, _, _ = R.json("GET", "/api/v1/blacklist")
check(any(e["net"] == "198.51.100.0/24" and e["note"] == "scanner" for e in body["items"]), "blacklist lists it")
st, body, _, _ = W.json("DELETE", "/api/v1/blacklist/198.51.100.0/24")
check(st == 200 and body["removed"]["net"] == "198.51.100.0/24", "blacklist delete by prefix")
st, body, _, _ = W.json("DELETE", "/api/v1/blacklist/198.51.100.0/24")
check(st == 404 and body["error"] == cli_error("blacklist", "remove", "198.51.100.0/24"), "delete again: 404 with the CLI's message")
st, body, _, _ = W.json("POST", "/api/v1/whitelist", {"prefix": "2001:db8::/32"})
check(st == 201, "whitelist add (IPv6)")
st, body, _, _ = W.json("DELETE", "/api/v1/whitelist/2001:db8::/32")
check(st == 200, "whitelist delete")

# ---- security settings
st, body, _, _ = W.json("PATCH", "/api/v1/security", {"auth_failures_before_ban": 2})
check(st == 400 and body["error"] == cli_error("security", "set", "auth_failures_before_ban", "2"),
      "setting below its minimum: 400 with the CLI's message")
st, body, _, _ = W.json("PATCH", "/api/v1/security", {"auth_failures_before_ban": 7, "admin_failures_before_ban": 6})
check(st == 200 and body["auth_failures_before_ban"] == 7 and body["console"]["admin_failures_before_ban"] == 6,
      "patch settings")
rc, out, _ = cli("security", "show", "--json")
check(json.loads(out)["auth_failures_before_ban"] == 7, "the CLI sees the API's change")
st, body, _, _ = W.json("PATCH", "/api/v1/security", {"bogus": 1})
check(st == 400 and body["error"] == cli_error("security", "set", "bogus", "1"), "unknown setting: 400")

# ---- call policy (countries, office hours, …), as `palisade policy set`
st, body, _, _ = W.json("PATCH", "/api/v1/policy", {"country_code": "44", "allowed_country_codes": ["1", "49"]})
check(st == 200 and body["country_code"] == "44" and body["allowed_country_codes"] == ["1", "49"], "patch policy")
st, body, _, _ = R.json("GET", "/api/v1/countries")
check(st == 200 and body["home"] == "44" and body["items"] == ["1", "49"], "countries follow")
st, body, _, _ = W.json("PATCH", "/api/v1/policy", {"country_code": "9999", "pin_unlock_seconds": 60})
check(st == 400 and body["error"] == cli_error("policy", "set", "country_code", "9999"),
      "bad policy value: 400 with the CLI's message, and nothing written")
st, body, _, _ = R.json("GET", "/api/v1/policy")
check(body["pin_unlock_seconds"] == 3600 and body["country_code"] == "44", "an invalid change writes nothing")

# ---- voicemail: a message as the server stores them (8 kHz PCM16 WAV, then its row)
import os, sqlite3, struct, time, wave  # noqa: E401,E402
os.makedirs(os.path.join(data, "voicemail", "300"), exist_ok=True)
with wave.open(os.path.join(data, "voicemail", "300", "m1.wav"), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(struct.pack("<800h", *([1000, -1000] * 400)))
db = sqlite3.connect(os.path.join(data, "palisade.db"), timeout=5)
db.execute("INSERT INTO voicemail_messages (mailbox, caller, caller_name, received_at, duration_ms, file) "
           "VALUES ('300', '101', 'Bob', ?, 100, '300/m1.wav')", (int(time.time() * 1000),))
db.commit()
msg_id = db.execute("SELECT id FROM voicemail_messages WHERE file = '300/m1.wav'").fetchone()[0]
db.close()
st, body, _, _ = R.json("GET", "/api/v1/voicemail/300")
check(st == 200 and [m["id"] for m in body["items"]] == [msg_id] and body["items"][0]["caller"] == "101",
      "voicemail list")
res, raw = R.request("GET", f"/api/v1/voicemail/300/{msg_id}")
check(res.status == 200 and res.headers["Content-Type"] == "audio/wav" and raw[:4] == b"RIFF", "voicemail WAV")
st, body, _, _ = W.json("DELETE", f"/api/v1/voicemail/300/{msg_id}")
check(st == 200 and not os.path.exists(os.path.join(data, "voicemail", "300", "m1.wav")),
      "voicemail delete (row and file)")
st, body, _, _ = R.json("GET", f"/api/v1/voicemail/300/{msg_id}")
check(st == 404, "deleted message: 404")
st, body, _, _ = R.json("GET", "/api/v1/voicemail/300/7")
check(st == 404, "unknown message: 404")
st, body, _, _ = R.json("GET", "/api/v1/voicemail/300/x")
check(st == 400, "bad message id: 400")

# ---- audit
st, body, _, _ = R.json("GET", "/api/v1/audit?limit=500")
actions = [(e["actor"], e["action"]) for e in body["items"]]
for a in ["extension.create", "extension.update", "extension.remove", "blacklist.add", "blacklist.remove",
          "security.set"]:
    check(("token:w", a) in actions, f"audit holds {a} by token:w")
upd = next(e for e in body["items"] if e["action"] == "extension.update")
check('"enabled":true' in upd["before"] and '"enabled":false' in upd["after"], "audit: before -> after")
rc, out, _ = cli("audit", "--json", "--limit", "500")
check(rc == 0 and len(json.loads(out)) == len(body["items"]), "palisade audit shows the same log")

# ---- the OpenAPI document
st, doc, _, _ = R.json("GET", "/api/v1/openapi.json")
check(st == 200 and doc["openapi"].startswith("3."), "openapi.json served")
try:
    from openapi_spec_validator import validate
    validate(doc)
    check(True, "openapi.json is a valid OpenAPI 3 document")
except ImportError:
    check(False, "openapi-spec-validator missing: run scripts/install-deps.sh")
except Exception as e:  # noqa: BLE001 - any validation error fails the test
    check(False, f"openapi.json invalid: {e}")
# Every documented operation is served: an unmatched path would answer "no such API resource", a wrong method 405.
fill = {"number": "300", "id": "7", "prefix": "192.0.2.77", "name": "no-such.tar"}
for path, item in doc["paths"].items():
    for method in item:
        p = "/api/v1" + path
        for k, v in fill.items():
            p = p.replace("{" + k + "}", v)
        if path == "/stream":
            continue
        st, body, _, _ = W.json(method.upper(), p, {} if method in ("post", "patch") else None)
        served = st != 405 and not (st == 404 and body and "no such API resource" in body.get("error", ""))
        check(served, f"{method.upper()} {path} is served ({st})")
st, body, _, _ = W.json("GET", "/api/v1/nothing-here")
check(st == 404 and "no such API resource" in body["error"], "undocumented path: 404")
st, body, _, _ = W.json("PUT", "/api/v1/extensions")
check(st == 405, "wrong method: 405")

# ---- live stream (SSE)
res, _ = None, None
import http.client, ssl  # noqa: E401,E402
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
conn.request("GET", "/api/v1/stream", headers={"Authorization": "Bearer " + read})
resp = conn.getresponse()
check(resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream"), "stream is SSE")
import time  # noqa: E402
# The stream starts with the current counts (its baseline); what happens after it is streamed.
seen = b""
deadline = time.time() + 5
while time.time() < deadline and b'"type":"status"' not in seen:
    seen += resp.fp.readline()
check(b"event: status" in seen and b'"calls":' in seen, f"the stream starts with the current status ({seen[:200]!r})")
W.json("POST", "/api/v1/blacklist", {"prefix": "192.0.2.55"})
seen = b""
deadline = time.time() + 8
while time.time() < deadline and b"192.0.2.55" not in seen:
    line = resp.fp.readline()
    if not line:
        break
    seen += line
check(b"event: security" in seen and b"192.0.2.55" in seen, "the stream carries the manual ban")
conn.close()

# ---- admin_failures_before_ban (set to 6 above) wrong tokens ban the source (127.0.0.6); others go on
from console_client import refused  # noqa: E402
limit = R.json("GET", "/api/v1/security")[1]["console"]["admin_failures_before_ban"]
check(limit == 6, "admin_failures_before_ban is 6")
time.sleep(2.5)  # the server re-reads console settings every 2 s
X = Client("127.0.0.1", port, source="127.0.0.6", token="pal_guess")
for i in range(limit):
    st, _, _, _ = X.json("GET", "/api/v1/extensions")
    check(st == 401, f"guessed token {i + 1}: 401")
check(refused("127.0.0.1", port, "127.0.0.6"), f"after {limit} wrong tokens 127.0.0.6 is refused")
st, _, _, _ = R.json("GET", "/api/v1/extensions")
check(st == 200, "127.0.0.1 with a valid token goes on")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
