#!/usr/bin/env python3
"""Conference rooms, call recordings and music on hold in the REST API and on the web console (issue 19).

Expects a running server where room 900 exists with one caller in it (a sipp UAC that stays until kicked) and
one recorded call exists (`recording set 101 always`).
API (bearer tokens): rooms list/show (with the participant), add (201; 409 for a taken number, 400 for a trivial
PIN), a read token cannot add (403), unlock, a participant action on nobody (400) and an unknown action (404);
recordings list, the WAV (audio/wav, RIFF), settings PATCH (retention; 400 out of range), per-extension mode PUT
(400 for an unknown mode), remove a room; music on hold: off, a server path refused, a WAV uploaded (converted),
junk and unknown extensions refused; everything audited.
Browser (Debian's chromium via Playwright): log in with TOTP, the Rooms & recordings page: add room 901 with a PIN,
see the caller in 900, mute it (the server reports it muted), play the recording in the page (its <audio> fetches
a WAV), set the retention, upload 102's music on hold and set it back to the default, kick the caller, delete the
recording, remove room 901. Screenshots go to SHOTS.

usage: media_console.py ADMIN_PORT DATA PALISADE_BIN SHOTS"""

import io
import json
import math
import os
import struct
import subprocess
import sys
import time
import wave

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


def wav_bytes(hz=440, rate=16000, channels=2, seconds=1.0):
    """A PCM WAV other than Palisade's own shape (the server converts it)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) * channels
                          for i in range(int(rate * seconds)))
        w.writeframes(frames)
    return buf.getvalue()


def wait(what, fn, seconds=8):
    end = time.time() + seconds
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.2)
    return False


write = cli("admin", "token", "create", "w", "--scope", "write", "--json")["token"]
read = cli("admin", "token", "create", "r", "--scope", "read", "--json")["token"]
W = Client("127.0.0.1", port, token=write)
R = Client("127.0.0.1", port, token=read)

# ---- API: rooms
st, body, _, _ = R.json("GET", "/api/v1/conferences")
check(st == 200 and [r["number"] for r in body["items"]] == ["900"], f"GET /conferences lists 900 ({st} {body})")
st, body, _, _ = R.json("GET", "/api/v1/conferences/900")
check(st == 200 and len(body["participants"]) == 1 and body["participants"][0]["caller"] == "100",
      f"GET /conferences/900: the caller 100 is in the room ({body})")
st, body, _, _ = W.json("POST", "/api/v1/conferences", {"number": "902", "pin": "4826", "max": 5})
check(st == 201 and body["room"]["pin"] is True and body["room"]["max_participants"] == 5,
      f"POST /conferences: 201, with a PIN ({st} {body})")
check(b"4826" not in W.json("GET", "/api/v1/audit?limit=50")[3], "the PIN is not in the audit log")
st, body, _, _ = W.json("POST", "/api/v1/conferences", {"number": "902"})
check(st == 409, f"the same room again: 409 ({st} {body})")
st, body, _, _ = W.json("POST", "/api/v1/conferences", {"number": "903", "pin": "1111"})
check(st == 400 and "PIN refused" in body["error"], f"a trivial PIN: 400 ({st} {body})")
st, body, _, _ = R.json("POST", "/api/v1/conferences", {"number": "904"})
check(st == 403, f"a read token cannot add a room: 403 ({st})")
st, body, _, _ = W.json("POST", "/api/v1/conferences/902/unlock")
check(st == 200 and body["cleared"] is False, f"unlock a room without wrong PINs ({st} {body})")
st, body, _, _ = W.json("POST", "/api/v1/conferences/900/participants/7/mute")
check(st == 400 and "not in the room" in body["error"], f"mute nobody: 400 ({st} {body})")
st, body, _, _ = W.json("POST", "/api/v1/conferences/900/participants/1/shout")
check(st == 404, f"an unknown action: 404 ({st} {body})")
st, body, _, _ = W.json("DELETE", "/api/v1/conferences/902")
check(st == 200 and W.json("GET", "/api/v1/conferences/902")[0] == 404, "DELETE /conferences/902")

# ---- API: recordings
st, body, _, _ = R.json("GET", "/api/v1/recordings")
check(st == 200 and len(body["items"]) == 1 and body["items"][0]["callee"] == "101",
      f"GET /recordings: the recorded call 100 -> 101 ({body})")
rec = body["items"][0]["id"] if body and body.get("items") else 0
res, wav = R.request("GET", f"/api/v1/recordings/{rec}")
check(res.status == 200 and res.headers.get("Content-Type") == "audio/wav" and wav[:4] == b"RIFF",
      f"GET /recordings/{rec}: a WAV ({res.status}, {len(wav)} bytes)")
check(R.json("GET", "/api/v1/recordings/99999")[0] == 404, "an unknown recording: 404")
st, body, _, _ = W.json("PATCH", "/api/v1/recordings/settings", {"retention_days": 99999})
check(st == 400 and "at most 36500" in body["error"], f"retention out of range: 400 ({st} {body})")
st, body, _, _ = W.json("PATCH", "/api/v1/recordings/settings", {"retention_days": 30, "announce": "on"})
check(st == 200 and body["retention_days"] == 30 and body["announce"] == "on", f"PATCH settings ({st} {body})")
st, body, _, _ = W.json("PUT", "/api/v1/recordings/extensions/102", {"mode": "sometimes"})
check(st == 400 and "always, on-demand or off" in body["error"], f"an unknown mode: 400 ({st} {body})")
st, body, _, _ = W.json("PUT", "/api/v1/recordings/extensions/102", {"mode": "on-demand"})
check(st == 200, f"PUT /recordings/extensions/102 on-demand ({st} {body})")
modes = {m["extension"]: m["mode"] for m in cli("recording", "show", "--json")["extensions"]}
check(modes == {"101": "always", "102": "on-demand"}, f"the CLI sees the API's changes ({modes})")
# ---- API: music on hold
st, body, _, _ = R.json("GET", "/api/v1/moh")
check(st == 200 and body["items"] == [], f"GET /moh: everyone on the default ({body})")
st, body, _, _ = W.json("PUT", "/api/v1/moh/101", {"music": "off"})
check(st == 200 and body["music"] == "off", f"PUT /moh/101 off ({st} {body})")
st, body, _, _ = W.json("PUT", "/api/v1/moh/101", {"music": "/etc/passwd"})
check(st == 400 and "upload a WAV" in body["error"], f"a server path is refused: 400 ({st} {body})")
res, raw = W.request("POST", "/api/v1/moh/101/upload", body=wav_bytes(), headers={"Content-Type": "audio/wav"})
body = json.loads(raw or b"{}")
check(res.status == 200 and body.get("music", "").startswith("file 101/"), f"upload a WAV for 101 ({res.status} {body})")
res, raw = W.request("POST", "/api/v1/moh/101/upload", body=b"not a wav", headers={"Content-Type": "audio/wav"})
check(res.status == 400 and b"not a WAV file" in raw, f"junk upload: 400 ({res.status} {raw[:120]})")
res, raw = W.request("POST", "/api/v1/moh/999/upload", body=wav_bytes(), headers={"Content-Type": "audio/wav"})
check(res.status == 404, f"upload for an unknown extension: 404 ({res.status})")
check(R.request("POST", "/api/v1/moh/101/upload", body=wav_bytes(), headers={"Content-Type": "audio/wav"})[0].status
      == 403, "a read token cannot upload: 403")
check(cli("moh", "show", "101", "--json")["music"].startswith("file 101/"), "the CLI sees the uploaded music")
music_files = [f for _, _, fs in os.walk(os.path.join(data, "music")) for f in fs]
check(len(music_files) == 1, f"one music file kept under DATA/music ({music_files})")

st, audit, _, _ = W.json("GET", "/api/v1/audit?limit=100")
acts = {(e["actor"], e["action"]) for e in audit["items"]}
for a in ("conference.add", "conference.unlock", "conference.remove", "recording.settings", "recording.mode",
          "moh.set", "moh.upload"):
    check(("token:w", a) in acts, f"audit holds {a} by token:w")

# ---- the console, in a browser
from playwright.sync_api import sync_playwright  # noqa: E402

root = cli("admin", "add", "root", "--json")
secret = cli("admin", "totp", "root", "--json")["secret"]


def shot(page, name):
    path = os.path.join(shots, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot {path}", flush=True)


def participant():
    rows = cli("conference", "participants", "900", "--json")
    return rows[0] if rows else None


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
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

    page.click("nav >> text=Rooms & recordings")
    page.wait_for_url(base + "/media")
    html = page.content()
    check("Conference rooms" in html and "Recording 1 (WAV)" in html.replace(f"Recording {rec} ", "Recording 1 "),
          "the page lists the rooms and the recording")
    page.fill("form[action='/media/rooms'] input[name=number]", "901")
    page.fill("form[action='/media/rooms'] input[name=pin]", "5937")
    page.click("button:has-text('Add room')")
    page.wait_for_load_state()
    check("Added conference room 901 (with a PIN" in page.content(), "adding room 901 on the page")
    check(any(r["number"] == "901" and r["pin"] for r in cli("conference", "list", "--json")),
          "the CLI lists room 901 with a PIN")
    page.fill("form[action='/media/rooms'] input[name=number]", "901")
    page.click("button:has-text('Add room')")
    page.wait_for_load_state()
    check("already" in page.content() or "taken" in page.content(), "adding 901 twice: the page says why")

    page.goto(base + "/media")
    row = page.locator("tr", has_text="Recording")
    check(page.locator("td >> text=100").count() >= 1, "the caller 100 is shown in room 900")
    page.locator("form[action='/media/participants'] button:has-text('Mute')").first.click()
    page.wait_for_load_state()
    check(wait("muted", lambda: (participant() or {}).get("muted") is True), "Mute: the server muted the caller")
    page.goto(base + "/media")
    check(page.locator("button:has-text('Unmute')").count() == 1, "the page offers Unmute for the muted caller")

    audio = page.locator("audio").first
    src = audio.get_attribute("src") or audio.locator("source").first.get_attribute("src")
    check(src is not None and src.endswith(".wav"), f"the recording plays in the page (<audio> {src})")
    if src:
        res = page.request.get(base + src)
        check(res.status == 200 and res.headers.get("content-type") == "audio/wav" and res.body()[:4] == b"RIFF",
              f"the page's audio source is the WAV ({res.status})")
        duration = page.evaluate("""async (src) => {
            const a = new Audio(src); await new Promise((ok, err) => { a.onloadedmetadata = ok; a.onerror = err; });
            return a.duration; }""", src)
        check(duration and duration > 0, f"chromium decodes the recording ({duration} s)")
    page.fill("form[action='/media/recordings/settings'] input[name=retention_days]", "45")
    page.click("form[action='/media/recordings/settings'] button:has-text('Save')")
    page.wait_for_load_state()
    check("recordings kept 45 days" in page.content(), "retention set on the page")
    shot(page, "media-01-rooms-and-recordings")

    page.fill("form[action='/media/moh/upload'] input[name=extension]", "102")
    wav_path = os.path.join(shots, "..", "upload.wav")
    with open(wav_path, "wb") as f:
        f.write(wav_bytes(hz=660, rate=44100, channels=1, seconds=2))
    page.set_input_files("form[action='/media/moh/upload'] input[name=file]", wav_path)
    page.click("form[action='/media/moh/upload'] button:has-text('Upload')")
    page.wait_for_load_state()
    check("Extension 102's callers on hold hear: file 102/" in page.content(), "uploading music on hold on the page")
    check(cli("moh", "show", "102", "--json")["music"].startswith("file 102/"), "the CLI sees 102's uploaded music")
    shot(page, "media-02-music-uploaded")
    page.locator("form[action='/media/moh']:has(input[value='102']) button:has-text('Default')").click()
    page.wait_for_load_state()
    check(cli("moh", "show", "102", "--json")["music"] == "default", "Default on the page: 102 back to the melody")

    page.locator("form[action='/media/participants'] button:has-text('Kick')").first.click()
    page.wait_for_load_state()
    check(wait("kicked", lambda: participant() is None), "Kick: the caller left room 900")
    page.goto(base + "/media")
    page.locator(f"form[action='/media/recordings/{rec}/delete'] button").click()
    page.wait_for_load_state()
    check(f"Deleted recording {rec}." in page.content() and cli("recording", "list", "--json") == [],
          "deleting the recording on the page")
    page.locator("form[action='/media/rooms/remove']:has(input[value='901']) button").click()
    page.wait_for_load_state()
    check("Removed conference room 901." in page.content(), "removing room 901 on the page")
    shot(page, "media-03-after")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/media")
    shot(page, "media-04-narrow")
    browser.close()

st, audit, _, _ = W.json("GET", "/api/v1/audit?limit=100")
acts = {(e["actor"], e["action"]) for e in audit["items"]}
for a in ("conference.add", "conference.mute", "conference.kick", "recording.delete", "conference.remove",
          "moh.upload", "moh.set"):
    check(("admin:root", a) in acts, f"audit holds {a} by admin:root")
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
