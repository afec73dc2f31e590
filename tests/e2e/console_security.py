#!/usr/bin/env python3
"""The console's security end to end: nothing answers without a session or token, cookie flags, login with TOTP,
forced 2FA enrolment, CSRF and role checks, logout, idle sessions, console bans separate from SIP.
usage: console_security.py ADMIN_PORT SIP_PORT DATA_DIR PALISADE_BIN"""

import json
import re
import subprocess
import sys
import time

from console_client import Client, refused, sip_ping, totp

port, sip_port, data, binary = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args):
    r = subprocess.run([binary, *args, "--data", data], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout) if "--json" in args else r.stdout


def sip_options(source):
    return sip_ping(sip_port, source)


PAGES = ["/", "/security", "/extensions", "/extensions/100", "/blacklist", "/whitelist", "/events", "/calls",
         "/cdr", "/cdr.csv", "/routing", "/voicemail", "/audit", "/settings", "/live", "/voicemail/100/1.wav"]
API = ["/api/v1/extensions", "/api/v1/openapi.json", "/api/v1/stream", "/api/v1/audit", "/api/v1/cert"]

anon = Client("127.0.0.1", port)
for p in PAGES:
    res, _ = anon.request("GET", p)
    check(res.status == 303 and res.headers["Location"] == "/login", f"GET {p} without a session: to /login")
for p in ["/extensions", "/blacklist", "/settings/tokens", "/security", "/logout"]:
    res, _ = anon.request("POST", p, form={"csrf": "x", "prefix": "192.0.2.1", "number": "1"})
    check(res.status in (303, 403) and not (200 <= res.status < 300), f"POST {p} without a session refused ({res.status})")
# Four bad API tokens from this source (not five: it would be banned); a success does not forgive API failures.
for p in API[:4]:
    res, _ = anon.request("GET", p, token="pal_nope")
    check(res.status == 401, f"GET {p} with a wrong token: 401")
res, _ = anon.request("GET", "/static/app.css")
check(res.status == 200, "the stylesheet needs no session")

# ---- an admin with TOTP
root = cli("admin", "add", "root", "--json")
secret = cli("admin", "totp", "root", "--json")["secret"]
b = Client("127.0.0.1", port)
res, _ = b.login("root", root["password"], totp(secret))
cookie = res.headers.get("Set-Cookie", "")
check(res.status == 303 and res.headers["Location"] == "/", "login with password and TOTP")
check(cookie.startswith("__Host-palisade=") and all(f in cookie for f in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"]),
      f"session cookie flags: {cookie}")
res, body = b.request("GET", "/")
check(res.status == 200 and b"Dashboard" in body, "dashboard after login")
for h, v in [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]:
    check(res.headers.get(h) == v, f"header {h}: {v}")
check("default-src 'self'" in res.headers.get("Content-Security-Policy", ""), "CSP")
for p in PAGES[:-1]:
    if p == "/live":
        continue  # an endless event stream
    res, _ = b.request("GET", p)
    check(res.status in (200, 404), f"GET {p} with a session ({res.status})")

# CSRF: missing, wrong, then right.
res, _ = b.request("POST", "/blacklist", form={"prefix": "192.0.2.10"})
check(res.status in (400, 403, 422) and res.status != 200, f"form without CSRF token refused ({res.status})")
res, _ = b.request("POST", "/blacklist", form={"csrf": "forged", "prefix": "192.0.2.10"})
check(res.status == 403, "form with a forged CSRF token: 403")
csrf = b.csrf("/blacklist")
res, body = b.request("POST", "/blacklist", form={"csrf": csrf, "prefix": "192.0.2.10", "expires": "", "note": "t"})
check(res.status == 200 and b"192.0.2.10" in body, "form with the session's CSRF token works")
res, body = b.request("POST", "/blacklist", form={"csrf": csrf, "prefix": "not-an-ip", "expires": "", "note": ""})
check(b"class=\"error\"" in body and b"not-an-ip" in body, "a bad value is answered with the CLI's message on the page")

# Wrong TOTP, reused TOTP.
c = Client("127.0.0.1", port)
res, _ = c.login("root", root["password"], "000000" if totp(secret) != "000000" else "111111")
check(res.status == 401, "a wrong code: 401")
res, _ = c.login("root", root["password"], totp(secret))
check(res.status == 401, "a code already used cannot log in again")

# ---- a viewer without TOTP must enrol first, and may not change anything
viewer = cli("admin", "add", "ann", "--role", "viewer", "--json")
v = Client("127.0.0.1", port)
res, _ = v.login("ann", viewer["password"])
check(res.status == 303 and res.headers["Location"] == "/account/2fa", "an account without 2FA is sent to enrol")
res, _ = v.request("GET", "/extensions")
check(res.status == 303 and res.headers["Location"] == "/account/2fa", "nothing else until enrolled")
res, body = v.request("GET", "/account/2fa")
m = re.search(rb'id="totp-secret">([A-Z2-7]+)<', body)
check(res.status == 200 and m and b"<svg" in body, "enrolment page with a QR code")
vsecret = m.group(1).decode()
vcsrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
res, _ = v.request("POST", "/account/2fa", form={"csrf": vcsrf, "code": totp(vsecret)})
check(res.status == 303 and res.headers["Location"] == "/", "enrolled with a code")
res, _ = v.request("GET", "/extensions")
check(res.status == 200, "then the pages open")
res, _ = v.request("POST", "/blacklist", form={"csrf": vcsrf, "prefix": "192.0.2.11"})
check(res.status == 403, "a viewer may not change anything: 403")
check(cli("admin", "list", "--json")[1]["totp_enrolled"] is True, "the enrolment is stored")
# An account removed with the CLI loses its open session within seconds.
cli("admin", "remove", "ann")
deadline = time.time() + 5
while time.time() < deadline and v.request("GET", "/extensions")[0].status == 200:
    time.sleep(0.3)
res, _ = v.request("GET", "/extensions")
check(res.status == 303 and res.headers["Location"] == "/login", "a removed account's session ends (CLI removal)")

# ---- logout
csrf = b.csrf("/settings")
old = dict(b.cookies)
res, _ = b.request("POST", "/logout", form={"csrf": csrf})
check(res.status == 303 and "Max-Age=0" in res.headers.get("Set-Cookie", ""), "logout clears the cookie")
b.cookies = old
res, _ = b.request("GET", "/")
check(res.status == 303 and res.headers["Location"] == "/login", "the old session no longer works")

# ---- the audit log shows console changes with who and from where
log = cli("audit", "--json", "--limit", "100")
check(any(e["actor"] == "admin:root" and e["action"] == "blacklist.add" and e["source"] == "127.0.0.1" for e in log),
      "audit: admin:root added to the blacklist from 127.0.0.1")

# ---- five wrong passwords ban 127.0.0.3 from the console, not from SIP; other sources are unaffected
check(sip_options("127.0.0.3"), "SIP answers 127.0.0.3 before")
x = Client("127.0.0.1", port, source="127.0.0.3")
for i in range(4):
    res, _ = x.login("root", "wrong-password")
    check(res.status == 401, f"wrong password {i + 1}: 401")
res, _ = x.login("root", "wrong-password")
check(res.status == 401, "wrong password 5: 401 (and a ban)")
check(refused("127.0.0.1", port, "127.0.0.3"), "127.0.0.3 is refused by the console now")
check(sip_options("127.0.0.3"), "SIP still answers 127.0.0.3")
check(not refused("127.0.0.1", port, "127.0.0.1"), "127.0.0.1 still reaches the console")
bans = cli("admin", "bans", "--json")
check(any(b_["ip"] == "127.0.0.3" for b_ in bans), "palisade admin bans lists it")
events = json.loads(subprocess.run([binary, "events", "--kind", "console_ban", "--json", "--data", data],
                                   capture_output=True, text=True).stdout)
check(any(e["source"] == "127.0.0.3" for e in events), "a console_ban security event")
sip_blacklist = json.loads(subprocess.run([binary, "blacklist", "list", "--json", "--data", data],
                                          capture_output=True, text=True).stdout)
check(not any(e["net"].startswith("127.0.0.3") for e in sip_blacklist), "the SIP blacklist does not hold it")
cli("admin", "unban", "127.0.0.3")
deadline = time.time() + 5
while time.time() < deadline and refused("127.0.0.1", port, "127.0.0.3"):
    time.sleep(0.3)
check(not refused("127.0.0.1", port, "127.0.0.3"), "palisade admin unban lets it back within seconds")

# ---- a SIP ban does not lock the console: block 127.0.0.4 for SIP, it still reaches the console
cli("blacklist", "add", "127.0.0.4")
log = cli("audit", "--json", "--limit", "5")
check(any(e["actor"].startswith("cli:") and e["action"] == "cli" and e["target"] == "blacklist add 127.0.0.4"
          and e["source"] == "local" for e in log), "a change made with the CLI is in the audit log")
time.sleep(1.5)
check(not sip_options("127.0.0.4"), "SIP ignores blacklisted 127.0.0.4")
check(not refused("127.0.0.1", port, "127.0.0.4"), "the console still serves 127.0.0.4")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
