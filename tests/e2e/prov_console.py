#!/usr/bin/env python3
"""Phones in the REST API and in the web console (issue 14).

API (bearer tokens): create (201, the URL shown once; 409 for a taken MAC, 400 for a bad MAC or model, 404 for an
unknown extension, 422 for a malformed body, 403 for a read token), list (no tokens), show (the web-admin
password for write tokens only), reprovision (new URL; the old one 404s, the new one serves), remove, audit.
Browser (Debian's chromium driven by Playwright): log in with TOTP, add a phone on the Phones page, see its URL
once and fetch the phone's file from it, show the phone, reprovision, remove. Screenshots go to SHOTS.

usage: prov_console.py ADMIN_PORT DATA PALISADE_BIN SHOTS"""

import json
import os
import re
import subprocess
import sys
import urllib.parse

from console_client import Client, totp

port, data, binary, shots = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = f"https://127.0.0.1:{port}"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args):
    r = subprocess.run([binary, *args, "--data", data], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout) if "--json" in args else r.stdout


def fetch(url, ua):
    """GET a provisioning URL as a phone: (status, body)."""
    u = urllib.parse.urlparse(url)
    c = Client(u.hostname, u.port)
    res, body = c.request("GET", u.path, headers={"User-Agent": ua}, token=None)
    return res.status, body.decode("utf-8", "replace")


for n in ("401", "402", "403"):
    cli("ext", "add", n)
write = cli("admin", "token", "create", "w", "--scope", "write", "--json")["token"]
read = cli("admin", "token", "create", "r", "--scope", "read", "--json")["token"]
W = Client("127.0.0.1", port, token=write)
R = Client("127.0.0.1", port, token=read)
YEALINK = "Yealink SIP-T46S 66.86.0.15 00:15:65:00:00:01"

# ---- API
st, body, _, _ = W.json("POST", "/api/v1/phones", {"mac": "00:15:65:00:00:01", "ext": "401", "model": "yealink"})
check(st == 201 and body["url"].startswith(f"{base}/prov/") and body["instructions"], f"POST /phones: 201 ({st})")
url = body["url"]
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"mac": "001565000001", "ext": "402", "model": "yealink"})
check(st == 409 and "already exists" in b2["error"], f"the same MAC again: 409 ({st} {b2})")
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"mac": "00:15:65:00:00:02", "ext": "401", "model": "snom"})
check(st == 409 and "extension 401" in b2["error"], f"a second phone for 401: 409 ({st} {b2})")
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"mac": "00:15:65", "ext": "402", "model": "yealink"})
check(st == 400 and "invalid MAC" in b2["error"], f"a bad MAC: 400 ({st} {b2})")
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"mac": "001565000003", "ext": "402", "model": "cisco"})
check(st == 400 and "unknown model" in b2["error"], f"an unknown model: 400 ({st} {b2})")
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"mac": "001565000003", "ext": "999", "model": "yealink"})
check(st == 404 and "extension 999 does not exist" in b2["error"], f"an unknown extension: 404 ({st} {b2})")
st, b2, _, _ = W.json("POST", "/api/v1/phones", {"ext": "402"})
check(st == 422, f"a body without model: 422 ({st})")
st, b2, _, _ = R.json("POST", "/api/v1/phones", {"mac": "001565000003", "ext": "402", "model": "yealink"})
check(st == 403, f"a read token cannot add: 403 ({st})")

st, body, _, raw = R.json("GET", "/api/v1/phones")
check(st == 200 and [p["id"] for p in body["items"]] == ["001565000001"], "GET /phones lists the phone")
token = url.rstrip("/").rsplit("/", 1)[1]
check(token.encode() not in raw and b"admin_password" not in raw, "the list holds neither the URL token nor passwords")
st, w, _, _ = W.json("GET", "/api/v1/phones/00:15:65:00:00:01")
st2, r, _, _ = R.json("GET", "/api/v1/phones/001565000001")
check(st == 200 and len(w.get("admin_password") or "") >= 12, "write token: show has the web-admin password")
check(st2 == 200 and "admin_password" not in r, "read token: show has no web-admin password")

st, text = fetch(url + "001565000001.cfg", YEALINK)
check(st == 200 and "account.1.password" in text, f"the URL from the API serves the Yealink ({st})")
st, body, _, _ = W.json("POST", "/api/v1/phones/001565000001/reprovision")
check(st == 200 and body["url"] != url and body["phone"]["state"] == "waiting", f"reprovision: a new URL ({st})")
check(fetch(url + "001565000001.cfg", YEALINK)[0] == 404, "the old URL is 404 after reprovision")
st, text = fetch(body["url"] + "001565000001.cfg", YEALINK)
check(st == 200 and "account.1.password" in text, "the new URL serves the credentials")
st, body, _, _ = W.json("DELETE", "/api/v1/phones/001565000001")
check(st == 200 and body["removed"] == "001565000001", "DELETE /phones/{id}")
st, _, _, _ = W.json("GET", "/api/v1/phones/001565000001")
check(st == 404, "a removed phone: 404")
st, audit, _, _ = W.json("GET", "/api/v1/audit?limit=100")
acts = {(e["actor"], e["action"]) for e in audit["items"]}
for a in ("phone.create", "phone.reprovision", "phone.remove"):
    check(("token:w", a) in acts, f"audit holds {a} by token:w")

# ---- the console, in a browser
from playwright.sync_api import sync_playwright  # noqa: E402

root = cli("admin", "add", "root", "--json")
secret = cli("admin", "totp", "root", "--json")["secret"]


def shot(page, name):
    path = os.path.join(shots, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot {path}", flush=True)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                args=["--no-sandbox", "--disable-gpu"])
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.on("dialog", lambda d: d.accept())
    page.goto(base + "/")
    page.fill("#name", "root")
    page.fill("#password", root["password"])
    page.fill("#code", totp(secret))
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/")

    page.click("nav >> text=Phones")
    page.wait_for_url(base + "/phones")
    check("No provisioned phones yet." in page.content(), "the Phones page, empty")
    check(page.locator("text=Linphone: Settings > Advanced > Remote provisioning URL").count() >= 1,
          "the Phones page says how to point each vendor's phone at its URL")
    page.fill("input[name=mac]", "00:04:13:AA:BB:01")
    page.fill("input[name=ext]", "402")
    page.select_option("select[name=model]", "snom")
    page.click("button:has-text('Add')")
    page.wait_for_url(base + "/phones")
    html = page.content()
    m = re.search(r"Provisioning URL: (https://[^<\s]+/prov/[a-z2-7]{32}/)", html)
    check(m is not None and "Phone 000413aabb01 added" in html, "adding shows the provisioning URL once")
    shot(page, "prov-01-added")
    if m:
        st, text = fetch(m.group(1) + "000413AABB01.xml",
                         "Mozilla/4.0 (compatible; snomD735-SIP 10.1.33.33; 000413AABB01)")
        check(st == 200 and "<user_pass" in text, f"the URL from the console serves the Snom its settings ({st})")
    page.goto(base + "/phones")
    check(page.locator("td >> text=000413aabb01").count() == 1 and "provisioned" in page.content(),
          "the list shows the phone, provisioned")
    shot(page, "prov-02-list")
    page.click("a:has-text('000413aabb01')")
    page.wait_for_url(base + "/phones/000413aabb01")
    check("Web-admin password" in page.content() and "Bound to" in page.content(),
          "the phone's page shows its binding and web-admin password")
    shot(page, "prov-03-show")
    page.click("button:has-text('Reprovision')")
    page.wait_for_load_state()
    html = page.content()
    m2 = re.search(r"Provisioning URL: (https://[^<\s]+/prov/[a-z2-7]{32}/)", html)
    check(m2 is not None and m is not None and m2.group(1) != m.group(1), "reprovision shows a new URL")
    shot(page, "prov-04-reprovisioned")
    page.goto(base + "/phones")
    page.click("button:has-text('Remove')")
    page.wait_for_load_state()
    check("No provisioned phones yet." in page.content(), "remove: the list is empty again")
    browser.close()

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
