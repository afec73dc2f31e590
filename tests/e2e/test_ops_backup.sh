#!/usr/bin/env bash
# Online backup and restore (issue 18), under load:
#   * state first: a voicemail message (sipp calls unregistered 102 and plays a tone for 11 s), an automatic ban
#     (3 wrong passwords from 127.0.0.2 with auth_failures_before_ban 3) and a manual one (blacklist add);
#   * 50 authenticated calls with RTP (sipp UAC -> Palisade -> sipp UAS 101, 8 s each) and continuous
#     registrations of 600-609 (sipp reg_auth.xml, 10/s) run while `palisade backup FILE` runs; every call and
#     every registration still succeeds;
#   * `palisade restore FILE` into the live data directory is refused (exit 1, "not empty"); into a new one it
#     works; the restored server (other port) authenticates 600-609 and 101 with their passwords, holds the same
#     blacklist (JSON equal, the ban still drops 127.0.0.2), the same voicemail (WAV SHA-256 equal), and every
#     CDR that ended before the backup started, each equal to the original's row, none that the original lacks;
#   * scheduled backups ([backup] interval_seconds = 10, keep = 1): at least two written, only the newest kept.
# Ports: signalling 26400-26599 (E2E range), relay 32000-32499.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26599}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox

CALLS=50
RTP_LO=32000 RTP_HI=32499
SCEN=$E2E_DIR/scenarios
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
for range in "101 102" "200 $((200 + CALLS - 1))" "600 609"; do
  # shellcheck disable=SC2086
  pal ext add-range $range 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" || fail "ext add-range $range"
done
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
cat >>"$data/palisade.toml" <<'TOML'
[backup]
interval_seconds = 10
keep = 1
TOML
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set auth_failures_before_ban"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 12 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# --- state to back up: a voicemail message, an automatic and a manual ban
block=$(free_port 6)
printf 'SEQUENTIAL\n%s\n' "200;$(cred 200 2);$(cred 200 3);102" >"$E2E_TMP/vm.csv"
(cd "$E2E_TMP" && timeout -k 2 40 sipp -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/vm.csv" -i "$HOST" -p "$block" \
  -mi "$HOST" -mp $((block + 2)) -m 1 -d 11000 -nostdin -timeout 30 -timeout_error \
  -trace_err -error_file "$E2E_TMP/vm.err" "$HOST:$port" >"$E2E_TMP/vm.out" 2>&1) || fail "sipp voicemail deposit"
vm_count() { "$PALISADE_BIN" voicemail list 102 --json --data "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
for ((i = 0; i < 30; i++)); do
  [ "$(vm_count "$data")" = 1 ] && break
  sleep 0.1
done
[ "$(vm_count "$data")" = 1 ] || fail "no voicemail message for 102"
vm_id=$(pal voicemail list 102 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
pal voicemail export 102 "$vm_id" "$E2E_TMP/vm-original.wav" >/dev/null || fail "voicemail export"
timeout -k 2 20 python3 "$E2E_DIR/guard_client.py" "$HOST:$port" 127.0.0.2 auth 3 600 "$(cred 600 2)" WrongPassw0rd \
  >"$E2E_TMP/wrong.jsonl" || fail "guard_client wrong passwords"
pal blacklist add 198.51.100.7 --note "e2e manual ban" >/dev/null || fail "blacklist add"
for ((i = 0; i < 30; i++)); do
  pal blacklist list --json | grep -q '127.0.0.2' && break
  sleep 0.1
done
pal blacklist list --json | grep -q '127.0.0.2' || fail "127.0.0.2 not banned automatically"
ok "state: 1 voicemail message for 102, automatic ban of 127.0.0.2, manual ban of 198.51.100.7"

# --- load: 50 calls and continuous registrations
ublock=$(free_port 6)
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$ublock" --bind "$ublock") || fail "register 101: $r"
spawn "$E2E_TMP/uas.out" timeout -k 2 60 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$ublock" \
  -mi "$HOST" -mp $((ublock + 2)) -rtp_echo -m "$CALLS" -nostdin -timeout 50 \
  -trace_stat -stf "$E2E_TMP/uas.csv" -fd 1 -trace_err -error_file "$E2E_TMP/uas.err"
sleep 0.3
{
  echo SEQUENTIAL
  for n in $(seq 200 $((200 + CALLS - 1))); do echo "$n;$(cred "$n" 2);$(cred "$n" 3);101"; done
} >"$E2E_TMP/calls.csv"
cblock=$(free_port 6)
(cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/calls.csv" \
  -i "$HOST" -p "$cblock" -mi "$HOST" -mp $((cblock + 2)) -r 50 -l "$CALLS" -m "$CALLS" -d 8000 \
  -nostdin -timeout 50 -recv_timeout 10000 -trace_stat -stf "$E2E_TMP/uac.csv" -fd 1 \
  -trace_err -error_file "$E2E_TMP/uac.err" >"$E2E_TMP/uac.out" 2>&1 </dev/null) &
uac_pid=$!
E2E_PIDS+=("$uac_pid")
{
  echo SEQUENTIAL
  for n in $(seq 600 609); do echo "$n;$(cred "$n" 2);$(cred "$n" 3)"; done
} >"$E2E_TMP/reg.inf"
rport=$(free_port)
(cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$SCEN/reg_auth.xml" -inf "$E2E_TMP/reg.inf" -t u1 \
  -i "$HOST" -p "$rport" -m 120 -r 10 -nostdin -timeout 40 -timeout_error -max_retrans 3 \
  -trace_stat -stf "$E2E_TMP/reg.csv" -trace_err -error_file "$E2E_TMP/reg.err" >"$E2E_TMP/reg.out" 2>&1 </dev/null) &
reg_pid=$!
E2E_PIDS+=("$reg_pid")

talking=0
for ((i = 0; i < 40; i++)); do
  talking=$(pal calls --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c["state"] == "talking"))' 2>/dev/null || echo 0)
  [ "$talking" -ge 40 ] && break
  sleep 0.2
done
[ "$talking" -ge 40 ] || fail "only $talking calls talking before the backup"
backup_started_ms=$(date +%s%3N)
t0=$(date +%s%N)
pal backup "$E2E_TMP/pbx-backup.tar" >"$E2E_TMP/backup.out" 2>&1 || fail "backup: $(cat "$E2E_TMP/backup.out")"
t1=$(date +%s%N)
alive "$uac_pid" || fail "the calls ended before the backup finished: the test did not back up under load"
ok "backup with $talking calls talking and registrations running, in $(((t1 - t0) / 1000000)) ms: $(cat "$E2E_TMP/backup.out")"

rc=0
wait "$uac_pid" || rc=$?
stat_of() { python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
print(rows[-1][rows[0].index(sys.argv[2])])' "$1" "$2"; }
succ=$(stat_of "$E2E_TMP/uac.csv" 'SuccessfulCall(C)' 2>/dev/null || echo "?")
failed=$(stat_of "$E2E_TMP/uac.csv" 'FailedCall(C)' 2>/dev/null || echo "?")
if [ "$rc" != 0 ] || [ "$succ" != "$CALLS" ] || [ "$failed" != 0 ]; then
  show "$E2E_TMP/uac.err" 20
  fail "calls during the backup: exit $rc, $succ successful, $failed failed (want $CALLS and 0)"
fi
rc=0
wait "$reg_pid" || rc=$?
rsucc=$(stat_of "$E2E_TMP/reg.csv" 'SuccessfulCall(C)' 2>/dev/null || echo "?")
{ [ "$rc" = 0 ] && [ "$rsucc" = 120 ]; } || {
  show "$E2E_TMP/reg.err" 20
  fail "registrations during the backup: exit $rc, $rsucc of 120 successful"
}
ok "during the backup: $succ/$CALLS calls and $rsucc/120 registrations succeeded"

# --- restore
rc=0
"$PALISADE_BIN" restore "$E2E_TMP/pbx-backup.tar" --data "$data" >"$E2E_TMP/refused.out" 2>&1 || rc=$?
{ [ "$rc" = 1 ] && grep -q 'not empty' "$E2E_TMP/refused.out"; } ||
  fail "restore into the live data directory: exit $rc, $(cat "$E2E_TMP/refused.out")"
ok "restore into the live data directory refused: $(head -c 160 "$E2E_TMP/refused.out")..."
restored=$E2E_TMP/restored
"$PALISADE_BIN" restore "$E2E_TMP/pbx-backup.tar" --data "$restored" >"$E2E_TMP/restore.out" 2>&1 ||
  fail "restore: $(cat "$E2E_TMP/restore.out")"
ok "$(cat "$E2E_TMP/restore.out")"

# Scheduled backups: the original server wrote at least two by now (>= 20 s since it started) and kept one.
for ((i = 0; i < 150; i++)); do
  [ "$(grep -c 'scheduled backup written' "$PAL_ERR")" -ge 2 ] && break
  sleep 0.1
done
written=$(grep -c 'scheduled backup written' "$PAL_ERR" || true)
kept=$(find "$data/backups" -maxdepth 1 -name 'palisade-*.tar' | wc -l)
{ [ "$written" -ge 2 ] && [ "$kept" = 1 ]; } || fail "scheduled backups: $written written, $kept kept (want >= 2 and 1)"
ok "scheduled backups: $written written, $kept kept (keep = 1)"
orig_pid=$PAL_PID
orig_err=$PAL_ERR

rport2=$(free_port)
pal_start "$restored" --listen "udp:$HOST:$rport2" --rtp-ports "$RTP_LO-$RTP_HI"
for n in 101 $(seq 600 609); do
  out=$(timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$rport2" udp "$n" "$(cred "$n" 2)" "$(cred "$n" 3)") ||
    fail "reg_client $n on the restored server: $out"
  code=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("final", d["challenge"])["code"])')
  [ "$code" = 200 ] || fail "restored server: $n got $code (want 200)"
done
ok "restored server authenticates 101 and 600-609 with their passwords (200)"

lists() { "$PALISADE_BIN" blacklist list --json --data "$1" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
print(json.dumps(sorted((r["net"], r["action"], r["origin"], r["reason"], r["note"], r["created_at"]) for r in rows)))'; }
[ "$(lists "$data")" = "$(lists "$restored")" ] || fail "blacklists differ: $(lists "$data") vs $(lists "$restored")"
probe=$(timeout -k 2 10 python3 "$E2E_DIR/guard_client.py" "$HOST:$rport2" 127.0.0.2 probe || true)
case $probe in *'"silent"'*) ;; *) fail "banned 127.0.0.2 answered by the restored server: $probe" ;; esac
ok "same blacklist ($(lists "$restored")); the restored server drops 127.0.0.2"

"$PALISADE_BIN" voicemail export 102 "$vm_id" "$E2E_TMP/vm-restored.wav" --data "$restored" >/dev/null ||
  fail "voicemail export from the restored data"
a=$(sha256sum <"$E2E_TMP/vm-original.wav" | cut -d' ' -f1)
b=$(sha256sum <"$E2E_TMP/vm-restored.wav" | cut -d' ' -f1)
[ "$a" = "$b" ] || fail "voicemail differs: $a vs $b"
ok "same voicemail message (sha256 ${a:0:16}…)"

"$PALISADE_BIN" cdr --json --limit 1000 --data "$data" >"$E2E_TMP/cdr-original.json" || fail "cdr original"
"$PALISADE_BIN" cdr --json --limit 1000 --data "$restored" >"$E2E_TMP/cdr-restored.json" || fail "cdr restored"
cdrs=$(python3 - "$E2E_TMP/cdr-original.json" "$E2E_TMP/cdr-restored.json" "$backup_started_ms" <<'PY') || fail "CDRs: $cdrs"
import datetime, hashlib, json, sys
orig, rest, started = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
def key(r): return json.dumps(r, sort_keys=True)
def ended_ms(r):
    return int(datetime.datetime.fromisoformat(r["ended_at"].replace("Z", "+00:00")).timestamp() * 1000)
o, s = {key(r) for r in orig}, {key(r) for r in rest}
if not s <= o:
    sys.exit(f"restored CDRs the original lacks: {sorted(s - o)[:2]}")
before = {key(r) for r in orig if ended_ms(r) < started}
if not before <= s or not before:
    sys.exit(f"{len(before - s)} of {len(before)} CDRs that ended before the backup are missing")
h = hashlib.sha256("".join(sorted(before)).encode()).hexdigest()[:16]
print(f"{len(before)} CDRs ended before the backup, all restored equal (sha256 {h}…); {len(s)} restored, {len(o)} now")
PY
ok "CDRs: $cdrs"
no_panic "$orig_err"
no_panic
pal_stop
pal_stop "$orig_pid"
