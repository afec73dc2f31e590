#!/usr/bin/env bash
# The admin CLI never prints control characters that came from the network. A sipp phone (scenarios/
# cli_escape_uac.xml) whose User-Agent, From display name and a digest username carry terminal control
# sequences (ESC [2J clears the screen, ESC ]2: retitles the window, BEL, DEL, the C1 CSI U+009B, the bidi override
# U+202E) registers (after one wrong-password attempt with the hostile username), then calls 101, which is not
# registered, and leaves a voicemail message. Then:
#   * `palisade registrations`, `calls` (during the call), `cdr`, `events` and `voicemail list 101` contain no raw
#     ESC, BEL, DEL, C1 or bidi control byte (the attack: without escaping, the hostile text reaches the
#     operator's terminal as it is);
#   * the hostile text is shown escaped where it is shown: `\x1b[2J` in the User-Agent, the voicemail caller name
#     and the event's user;
#   * the --json outputs stay valid JSON and hold the original text (serde's \u001b escapes).
# Ports: signalling and sipp 27300-27399, relay 55100-55199.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27300 E2E_PORT_MAX=27399
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox

RTP_LO=55100 RTP_HI=55199
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 12 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

# The injection line, with raw control bytes (no ';': it separates the fields).
python3 - "$E2E_TMP/evil.csv" "$(cred 100 2)" "$(cred 100 3)" <<'PY'
import sys
display = "Eve\x1b[2J\x1b[31mRED\x7f\u009b1m\u202eevil"
agent = "Phone\x1b]2:pwned\x07\x1b[1A\u202eX"
user = "root\x1b[31m"
line = ";".join(["100", sys.argv[2], sys.argv[3], "101", display, agent, user])
with open(sys.argv[1], "wb") as f:
    f.write(b"SEQUENTIAL\n" + line.encode() + b"\n")
PY

# sipp's ports: SIP, then media RTP/RTCP and video RTP/RTCP (it binds all four): one block of 5.
block=$(free_port 5)
spawn "$E2E_TMP/sipp.out" bash -c "cd '$E2E_TMP' && exec timeout -k 2 40 sipp -sf '$E2E_DIR/scenarios/cli_escape_uac.xml' \
  -inf '$E2E_TMP/evil.csv' -i $HOST -p $block -mi $HOST -mp $((block + 1)) -m 1 -d 9000 -nostdin -timeout 35 \
  -timeout_error -trace_msg -message_file '$E2E_TMP/sipp.msg' -trace_err -error_file '$E2E_TMP/sipp.err' \
  $HOST:$port"
SIPP=$BG_PID

# During the call: `calls`.
for ((i = 0; i < 100; i++)); do
  [ "$(pal calls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 1 ] && break
  alive "$SIPP" || break
  sleep 0.05
done
pal calls >"$E2E_TMP/out.calls" || fail "palisade calls"
grep -q 100 "$E2E_TMP/out.calls" || {
  show "$E2E_TMP/sipp.msg" 60
  fail "the call from 100 never showed in 'palisade calls': $(cat "$E2E_TMP/out.calls")"
}
pal registrations >"$E2E_TMP/out.registrations" || fail "palisade registrations"

wait_exit "$SIPP" 30 || fail "sipp still running after 30 s"
rc=0
wait "$SIPP" || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/sipp.msg" 80
  show "$E2E_TMP/sipp.err" 10
  fail "sipp exited $rc (the hostile phone did not register or call)"
}
for ((i = 0; i < 30; i++)); do
  [ "$(pal voicemail list 101 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] && break
  sleep 0.1
done
pal cdr >"$E2E_TMP/out.cdr" || fail "palisade cdr"
pal events --limit 200 >"$E2E_TMP/out.events" || fail "palisade events"
pal voicemail list 101 >"$E2E_TMP/out.voicemail" || fail "palisade voicemail list"

# ---- no raw control bytes in any table
for f in calls registrations cdr events voicemail; do
  python3 - "$E2E_TMP/out.$f" <<'PY' || fail "palisade $f printed a raw control character: $(cat -v "$E2E_TMP/out.$f")"
import sys
text = open(sys.argv[1], "rb").read().decode("utf-8")
bad = sorted({f"U+{ord(c):04X}" for c in text
              if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e})
if bad:
    sys.exit(f"{sys.argv[1]}: {bad}")
PY
done
ok "calls, registrations, cdr, events, voicemail list: no raw control or bidi character"

# ---- the hostile text is shown escaped
has() { grep -qF -- "$2" "$E2E_TMP/out.$1" || fail "palisade $1 does not show '$2': $(cat "$E2E_TMP/out.$1")"; }
has registrations 'Phone\x1b]2:pwned\x07\x1b[1A\u{202e}X'
has voicemail 'Eve\x1b[2J\x1b[31mRED\x7f\u{9b}1m\u{202e}evil'
has events 'root\x1b[31m'
ok "User-Agent, voicemail caller name and event user shown with \\x1b-style escapes"

# ---- JSON stays valid and faithful
pal registrations --json | python3 -c '
import json, sys
regs = json.load(sys.stdin)
assert any(r.get("user_agent") == "Phone\x1b]2:pwned\x07\x1b[1A\u202eX" for r in regs), regs' ||
  fail "registrations --json lost or mangled the User-Agent"
pal voicemail list 101 --json | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m and m[0]["caller_name"] == "Eve\x1b[2J\x1b[31mRED\x7f\u009b1m\u202eevil", m' ||
  fail "voicemail list --json lost or mangled the caller name"
ok "--json: valid JSON holding the original text"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
