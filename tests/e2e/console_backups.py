#!/usr/bin/env python3
"""Backups through the API and the console: create, list, download, restore, upload, refusals, audit.
usage: console_backups.py PORT DATA_DIR PALISADE_BIN SCRATCH_DIR"""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

from console_client import Client, totp

port, data, binary, scratch = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cli(*args, data_dir=None):
    r = subprocess.run([binary, *args, "--data", data_dir or data], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr.strip()


def multipart(fields):
    """A multipart/form-data body of (name, filename or None, bytes) in order."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, filename, value in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if filename:
            out += b"Content-Type: application/x-tar\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


backups = os.path.join(data, "backups")
write = json.loads(cli("admin", "token", "create", "w", "--scope", "write", "--json")[1])["token"]
read = json.loads(cli("admin", "token", "create", "r", "--scope", "read", "--json")[1])["token"]
W = Client("127.0.0.1", port, token=write)
R = Client("127.0.0.1", port, token=read)
W.json("POST", "/api/v1/extensions", {"number": "410", "name": "Backed Up"})

# ---- API: create, list, download, restore
st, body, _, _ = W.json("POST", "/api/v1/backups")
check(st == 201 and body["name"].startswith("manual-") and body["name"].endswith(".tar")
      and body["kind"] == "manual" and body["bytes"] > 0 and "database" in body["summary"],
      f"POST /backups: 201, a manual backup ({body and body.get('name')})")
name = body["name"]
check(os.path.isfile(os.path.join(backups, name)), "written in DATA/backups")
check(body["restore_command"].startswith(f"palisade restore {os.path.join(backups, name)} --data "),
      "the answer carries the restore command")
st, body, _, _ = R.json("POST", "/api/v1/backups")
check(st == 403, "a read token may not create a backup: 403")

# A scheduled backup (as the schedule names it) is listed and downloadable too.
sched = "palisade-20261201T030000Z.tar"
shutil.copy(os.path.join(backups, name), os.path.join(backups, sched))
open(os.path.join(backups, ".upload-1-2.partial"), "wb").write(b"half")
st, body, _, _ = R.json("GET", "/api/v1/backups")
listed = {b["name"]: b["kind"] for b in body["items"]} if st == 200 else {}
check(st == 200 and listed == {name: "manual", sched: "scheduled"},
      f"GET /backups (read token): the manual and the scheduled one, nothing partial ({listed})")

res, raw = R.request("GET", f"/api/v1/backups/{name}")
check(res.status == 403 and b"write-scope" in raw, "a read token may not download a backup: 403")
res, raw = W.request("GET", f"/api/v1/backups/{name}")
check(res.status == 200 and res.headers["Content-Type"] == "application/x-tar"
      and raw == open(os.path.join(backups, name), "rb").read(), "GET /backups/NAME downloads the archive")
res, sraw = W.request("GET", f"/api/v1/backups/{sched}")
check(res.status == 200 and len(sraw) == len(raw), "the scheduled backup downloads too")
for bad in ["nope.tar", "..%2Fpalisade.db", ".upload-1-2.partial", "palisade.db"]:
    st, body, _, _ = W.json("GET", f"/api/v1/backups/{bad}")
    check(st == 404 and "does not exist" in body["error"], f"GET /backups/{bad}: 404")
downloaded = os.path.join(scratch, "downloaded.tar")
open(downloaded, "wb").write(raw)
fresh = os.path.join(scratch, "fresh")
rc, out, err = cli("restore", downloaded, data_dir=fresh)
check(rc == 0 and "Restored" in out, f"palisade restore of the download into a fresh dir ({err})")
rc, out, err = cli("ext", "list", "--json", data_dir=fresh)
check(rc == 0 and "410" in out, "the restored data holds the extension")

# ---- API: upload
res, raw2 = W.request("POST", "/api/v1/backups/upload", body=raw, headers={"Content-Type": "application/x-tar"})
up = json.loads(raw2)
check(res.status == 201 and up["name"].startswith("uploaded-") and up["kind"] == "uploaded",
      f"POST /backups/upload: 201, kept ({up})")
cmd = up["restore_command"].split()
check(cmd[:2] == ["palisade", "restore"] and cmd[3] == "--data", "the upload answers the restore command")
target = os.path.join(scratch, "from-upload")
r = subprocess.run([binary, "restore", cmd[2], "--data", target], capture_output=True, text=True, timeout=60)
check(r.returncode == 0, f"the restore command of the upload works ({r.stderr.strip()})")

corrupt = bytearray(raw)
corrupt[len(corrupt) // 2] ^= 0xFF
res, raw3 = W.request("POST", "/api/v1/backups/upload", body=bytes(corrupt),
                      headers={"Content-Type": "application/x-tar"})
err = json.loads(raw3).get("error", "")
check(res.status == 400 and "refused" in err and ("checksum" in err or "damaged" in err),
      f"a corrupted archive is refused: 400 ({err})")
res, raw3 = W.request("POST", "/api/v1/backups/upload", body=b"hello, not a tar" * 100,
                      headers={"Content-Type": "application/x-tar"})
err = json.loads(raw3).get("error", "")
check(res.status == 400 and "not a Palisade backup" in err, f"a foreign file is refused: 400 ({err})")
res, raw3 = W.request("POST", "/api/v1/backups/upload", body=b"", headers={"Content-Type": "application/x-tar"})
check(res.status == 400 and "empty" in json.loads(raw3).get("error", ""), "an empty upload is refused: 400")
res, _ = R.request("POST", "/api/v1/backups/upload", body=raw, headers={"Content-Type": "application/x-tar"})
check(res.status == 403, "a read token may not upload: 403")
kept = sorted(n for n in os.listdir(backups) if not n.startswith(".upload-1-2"))
check(len([n for n in kept if n.startswith("uploaded-")]) == 1 and not any(n.startswith(".") for n in kept),
      f"refused uploads leave nothing behind ({kept})")

# ---- console: admin creates, downloads, uploads
root = json.loads(cli("admin", "add", "root", "--json")[1])
secret = json.loads(cli("admin", "totp", "root", "--json")[1])["secret"]
b = Client("127.0.0.1", port)
res, _ = b.login("root", root["password"], totp(secret))
check(res.status == 303, "admin logs in")
res, page = b.request("GET", "/backups")
check(res.status == 200 and name.encode() in page and sched.encode() in page
      and f'href="/backups/download/{name}"'.encode() in page, "the Backups page lists them with downloads")
csrf = b.csrf("/backups")
res, page = b.request("POST", "/backups/create", form={"csrf": csrf})
m = re.search(rb"Backed up .*? to (manual-[0-9TZ-]+\.tar)", page)
check(res.status == 200 and m is not None, "console: Back up now")
res, got = b.request("GET", f"/backups/download/{m.group(1).decode() if m else 'x'}")
check(res.status == 200 and got[:512].find(b"MANIFEST.json") >= 0, "console: the download is an archive")
res, _ = b.request("POST", "/backups/create", form={"csrf": "stale"})
check(res.status == 403, "console: a stale CSRF token is refused")
body, hdrs = multipart([("csrf", None, csrf.encode()), ("archive", "bad.tar", bytes(corrupt))])
res, page = b.request("POST", "/backups/upload", body=body, headers=hdrs)
check(res.status == 400 and b"the archive is damaged" in page, "console: a corrupted upload shows why it is refused")
body, hdrs = multipart([("archive", "x.tar", raw)])
res, _ = b.request("POST", "/backups/upload", body=body, headers=hdrs)
check(res.status == 403, "console: an upload without the CSRF token is refused")
body, hdrs = multipart([("csrf", None, csrf.encode()), ("archive", "good.tar", raw)])
res, page = b.request("POST", "/backups/upload", body=body, headers=hdrs)
check(res.status == 200 and b"checked and kept as uploaded-" in page and b"palisade restore " in page,
      "console: a good upload is kept and the restore command shown")

# ---- console: a viewer sees the list but may not download or create
viewer = json.loads(cli("admin", "add", "ann", "--role", "viewer", "--json")[1])
v = Client("127.0.0.1", port)
v.login("ann", viewer["password"])
res, page = v.request("GET", "/account/2fa")
vsecret = re.search(rb'id="totp-secret">([A-Z2-7]+)<', page).group(1).decode()
vcsrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
v.request("POST", "/account/2fa", form={"csrf": vcsrf, "code": totp(vsecret)})
res, page = v.request("GET", "/backups")
check(res.status == 200 and name.encode() in page and b"/backups/download/" not in page,
      "viewer: the list without download links")
res, _ = v.request("GET", f"/backups/download/{name}")
check(res.status == 403, "viewer: a download is refused: 403")
res, _ = v.request("POST", "/backups/create", form={"csrf": vcsrf})
check(res.status == 403, "viewer: Back up now is refused: 403")

# ---- audit
st, body, _, _ = R.json("GET", "/api/v1/audit?limit=500")
actions = [(e["actor"], e["action"]) for e in body["items"]]
for who, a in [("token:w", "backup.create"), ("token:w", "backup.download"), ("token:w", "backup.upload"),
               ("token:w", "backup.upload_refused"), ("admin:root", "backup.create"),
               ("admin:root", "backup.download"), ("admin:root", "backup.upload")]:
    check((who, a) in actions, f"audit holds {a} by {who}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
