#!/usr/bin/env bash
# Voicemail in the database (issue 17, docs/cluster.md): a throwaway PostgreSQL (pg_lib.sh), nodes n1
# (127.0.0.31) and n2 (127.0.0.32), headless baresip phones 202 (880 Hz microphone) at n1 and 201 (440 Hz) at n2.
#   * 202 calls 201 through n1 while 201 has no phone registered: n1's voicemail answers and records 202's tone;
#     the message is a row in PostgreSQL and its WAV is in the database (voicemail_audio), not in n2's data
#     directory;
#   * 201's phone registers at n2, dials the voicemail number (999) there and enters its PIN (DTMF): n2 plays
#     the message left through n1 — 201 hears 880 Hz for seconds (sndfile dump, 100 ms blocks of pure tone) —
#     marks it read in PostgreSQL and keeps a local copy;
#   * `palisade voicemail export` on an empty data directory gets the same WAV from the database.
# Ports: SIP/ctrl/PostgreSQL 26400-26499, baresip RTP 26500-26539, relays n1 26540-26569, n2 26570-26599.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26400 E2E_PORT_MAX=26499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$E2E_DIR/baresip_lib.sh"
need baresip python3 ss psql sox
trap 'e2e_cleanup; pg_stop' EXIT

N1=127.0.0.31 N2=127.0.0.32
CTRL=$E2E_DIR/baresip_ctrl.py
ctrl() { timeout -k 1 25 python3 "$CTRL" "$@"; }
sql() { psql -XAtq "$PG_URL" -c "$1"; }

pg_start || fail "could not start PostgreSQL (see above)"
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 201 202 --data "$E2E_TMP/admin" --database "$PG_URL" >"$csv" 2>"$E2E_TMP/add.err" || {
  show "$E2E_TMP/add.err"
  fail "ext add-range 201 202 --database"
}
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password,4=PIN)

p1=$(free_port)
p2=$(free_port)
pal_start "$E2E_TMP/n1" --database "$PG_URL" --node n1 --listen "udp:$N1:$p1" --rtp-ports 26540-26569
N1_ERR=$PAL_ERR N1_PID=$PAL_PID
pal_start "$E2E_TMP/n2" --database "$PG_URL" --node n2 --listen "udp:$N2:$p2" --rtp-ports 26570-26599
N2_ERR=$PAL_ERR N2_PID=$PAL_PID

d=$E2E_TMP/phones
sb=$(free_port 3)
baresip_conf "$d/b" "$sb" $((sb + 2)) 26520 26539 880 \
  "<sip:202@$N1:$p1;transport=udp>;auth_user=$(cred 202 2);auth_pass=$(cred 202 3);regint=600"
spawn "$d/b.log" timeout -k 2 60 baresip -f "$d/b" -t 55
for ((i = 0; i < 100; i++)); do
  grep -q "202@$N1: {0/UDP/v4} 200 OK" "$d/b.log" && break
  sleep 0.1
done
grep -q "202@$N1: {0/UDP/v4} 200 OK" "$d/b.log" || fail "baresip 202 did not register at n1"

# 202 leaves a message through n1 (the default greeting, the beep, then ~6 s of 880 Hz).
ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:201@$N1:$p1" >"$E2E_TMP/dial1.json" 2>&1 || {
  show "$E2E_TMP/dial1.json"
  show "$N1_ERR" 30
  fail "202 -> 201 (no phone): voicemail did not answer"
}
sleep 14
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null 2>&1 || fail "202 could not hang up"
for ((i = 0; i < 50; i++)); do
  msg=$(sql "SELECT m.file || ' ' || COALESCE(octet_length(a.audio), 0) FROM voicemail_messages m
             LEFT JOIN voicemail_audio a ON a.file = m.file WHERE m.mailbox = '201'")
  [ -n "$msg" ] && break
  sleep 0.1
done
read -r file bytes <<<"$msg"
[ -n "$file" ] || fail "no voicemail message for 201 in PostgreSQL"
[ "$bytes" -gt 32000 ] || fail "the message's audio in PostgreSQL is $bytes bytes, expected over 2 s of 8 kHz PCM"
[ ! -e "$E2E_TMP/n2/voicemail/$file" ] || fail "n2 already has $file in its data directory"
ok "message left through n1: $file, $bytes bytes of WAV in PostgreSQL, not in n2's data directory"

# 201 listens through n2.
sa=$(free_port 3)
baresip_conf "$d/a" "$sa" $((sa + 2)) 26500 26519 440 \
  "<sip:201@$N2:$p2;transport=udp>;auth_user=$(cred 201 2);auth_pass=$(cred 201 3);regint=600"
spawn "$d/a.log" timeout -k 2 60 baresip -f "$d/a" -t 55
for ((i = 0; i < 100; i++)); do
  grep -q "201@$N2: {0/UDP/v4} 200 OK" "$d/a.log" && break
  sleep 0.1
done
grep -q "201@$N2: {0/UDP/v4} 200 OK" "$d/a.log" || fail "baresip 201 did not register at n2"
ctrl "$HOST:$((sa + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:999@$N2:$p2" >"$E2E_TMP/dial2.json" 2>&1 || {
  show "$E2E_TMP/dial2.json"
  show "$N2_ERR" 30
  fail "201 -> 999 at n2: voicemail did not answer"
}
sleep 1.5
ctrl "$HOST:$((sa + 2))" --timeout 3 sndcode "$(cred 201 4)#" >/dev/null || fail "sndcode PIN"
sleep 14
ctrl "$HOST:$((sa + 2))" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null 2>&1 || true
sleep 1
wav=$(find "$d/a/snd" -name '*dec.wav' | sort | tail -1)
[ -n "$wav" ] || fail "no received-audio dump at 201"
blocks=$(python3 "$E2E_DIR/tone_blocks.py" "$wav" 880 440)
n880=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["880"])' "$blocks")
[ "$n880" -ge 30 ] || {
  show "$N2_ERR" 20
  fail "201 heard only $n880 blocks (100 ms) of 880 Hz through n2 (want >= 30: the message): $blocks"
}
is_new=$(sql "SELECT is_new FROM voicemail_messages WHERE file = '$file'")
[ "$is_new" = f ] || fail "the message is_new=$is_new in PostgreSQL after 201 listened, expected f"
[ -s "$E2E_TMP/n2/voicemail/$file" ] || fail "n2 kept no local copy of $file"
ok "201 listened through n2: $n880 blocks of 880 Hz ($blocks), marked read, local copy kept"

# The CLI exports it from the database, without the file.
id=$(sql "SELECT id FROM voicemail_messages WHERE file = '$file'")
"$PALISADE_BIN" voicemail export 201 "$id" "$E2E_TMP/export.wav" --data "$E2E_TMP/empty" --database "$PG_URL" \
  >"$E2E_TMP/export.out" 2>&1 || fail "voicemail export: $(cat "$E2E_TMP/export.out")"
cmp -s "$E2E_TMP/export.wav" "$E2E_TMP/n1/voicemail/$file" || fail "the exported WAV differs from n1's file"
ok "voicemail export on an empty data directory got the same WAV from PostgreSQL"

no_panic "$N1_ERR"
no_panic "$N2_ERR"
pal_stop "$N1_PID"
pal_stop "$N2_PID"
