#!/usr/bin/env bash
# e2e: alone (CPU-bound load: run with nothing beside it; see run.sh)
# 100 concurrent authenticated calls with RTP through Palisade's media relay, over UDP:
#   * extensions 200-299 call 101 (`ext add-range 101 101` and `200 299`); 101 is a sipp UAS
#     (scenarios/call_uas_rtp.xml: 100, 180, 200 with SDP; -rtp_echo sends every RTP packet back to
#     where it came from: the relay), registered from its own port with call_client.py;
#   * a sipp UAC (scenarios/call_uac_rtp.xml, injection file number;auth_id;password;callee) places 100
#     calls at 50/s (all 100 up together for ~3 s), at most 100 at once (-l 100 -m 100): INVITE -> 407 -> INVITE with
#     Proxy-Authorization -> 200 -> ACK -> 5 s of G.711 RTP (play_pcap_audio of a pcap made here from a
#     sox tone) -> BYE;
#   * sipp: 100 successful calls, 0 failed; palisade holds 100 calls at the peak (`palisade calls`);
#     the loopback capture shows RTP relayed both ways for every call (relay -> callee's media port,
#     relay -> caller's media port, from >= 100 relay ports each);
#   * `palisade cdr` then has 100 answered records 2xx -> 101, and no port is left allocated:
#     `palisade calls --json` empty, no palisade UDP socket in the relay range.
# Ports: SIP/media of sipp 29000-29059, relay 29060-29499 (440 ports: 110 calls of 4).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29000 E2E_PORT_MAX=29059
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss sox tshark

CALLS=${CALL_LOAD_CALLS:-100}
RATE=${CALL_LOAD_RATE:-50}
HOLD_MS=${CALL_LOAD_HOLD_MS:-5000}
RTP_LO=29060 RTP_HI=29499
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 101 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 101 101"
"$PALISADE_BIN" ext add-range 200 $((200 + CALLS - 1)) --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
  fail "ext add-range 200 $((200 + CALLS - 1))"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
{
  echo SEQUENTIAL
  grep -E '^2[0-9][0-9],' "$csv" | awk -F, '{print $1 ";" $2 ";" $3 ";101"}'
} >"$E2E_TMP/calls.csv"
[ "$(grep -c ';101$' "$E2E_TMP/calls.csv")" = "$CALLS" ] || fail "injection file: expected $CALLS callers"

# 5 s of a 1 kHz tone as G.711 u-law RTP (20 ms, 160 bytes a packet) in an Ethernet pcap
sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 5.2 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

relay_sockets() { ss -Huanp | awk -v pid="$PAL_PID" -v lo="$RTP_LO" -v hi="$RTP_HI" '$0 ~ "pid=" pid "," {
  n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print $4 }'; }

# the callee: 101 registered from the UAS's port, then the UAS (RTP echo on its media port)
# one block of free ports per sipp: free_port only checks ports, it does not hold them, so two
# separate picks could overlap (the signalling port inside the media range)
ublock=$(free_port 6)
uport=$ublock umedia=$((ublock + 2))
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$uport" --bind "$uport") || fail "register 101: $r"
case $r in *'"final": 200'*) ;; *) fail "register 101 -> $HOST:$uport: $r" ;; esac
spawn "$E2E_TMP/uas.out" timeout -k 2 90 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$uport" \
  -mi "$HOST" -mp "$umedia" -rtp_echo -m "$CALLS" -nostdin -timeout 80 \
  -trace_stat -stf "$E2E_TMP/uas.csv" -fd 1 -trace_err -error_file "$E2E_TMP/uas.err"
upid=$BG_PID

# loopback capture of the media, headers only (self-terminating)
spawn "$E2E_TMP/tshark.log" timeout -k 2 80 tshark -i lo -s 96 -F pcap -a duration:70 -w "$E2E_TMP/cap.pcap" \
  -f "udp and portrange $RTP_LO-$RTP_HI"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$E2E_TMP/tshark.log" && break
  sleep 0.1
done
sleep 0.3
alive "$upid" || {
  show "$E2E_TMP/uas.out"
  fail "sipp UAS did not start"
}

cblock=$(free_port 6)
cport=$cblock cmedia=$((cblock + 2))
t0=$(date +%s.%N)
(cd "$E2E_TMP" && timeout -k 2 90 sipp "$HOST:$port" -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/calls.csv" \
  -i "$HOST" -p "$cport" -mi "$HOST" -mp "$cmedia" -r "$RATE" -l "$CALLS" -m "$CALLS" -d "$HOLD_MS" \
  -nostdin -timeout 80 -recv_timeout 10000 -trace_stat -stf "$E2E_TMP/uac.csv" -fd 1 \
  -trace_err -error_file "$E2E_TMP/uac.err" >"$E2E_TMP/uac.out" 2>&1 </dev/null) &
sipp_pid=$!
E2E_PIDS+=("$sipp_pid")

# the peak: sample `palisade calls` and the relay sockets while the calls are up
peak=0 peak_socks=0
for ((i = 0; i < 80; i++)); do
  alive "$sipp_pid" || break
  n=$("$PALISADE_BIN" calls --json --data "$data" 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c["state"] == "talking"))' 2>/dev/null || echo 0)
  s=$(relay_sockets | wc -l)
  [ "$n" -gt "$peak" ] && peak=$n
  [ "$s" -gt "$peak_socks" ] && peak_socks=$s
  sleep 0.25
done
rc=0
wait "$sipp_pid" || rc=$?
t1=$(date +%s.%N)
stat_of() { # csv column -> last value
  python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
h = rows[0]; last = rows[-1]
print(last[h.index(sys.argv[2])])' "$1" "$2"
}
succ=$(stat_of "$E2E_TMP/uac.csv" 'SuccessfulCall(C)' 2>/dev/null || echo "?")
failed=$(stat_of "$E2E_TMP/uac.csv" 'FailedCall(C)' 2>/dev/null || echo "?")
retrans=$(stat_of "$E2E_TMP/uac.csv" 'Retransmissions(C)' 2>/dev/null || echo "?")
if [ "$rc" != 0 ] || [ "$succ" != "$CALLS" ] || [ "$failed" != 0 ]; then
  show "$E2E_TMP/uac.out" 30
  show "$E2E_TMP/uac.err" 30
  show "$E2E_TMP/uas.err" 10
  show "$PAL_ERR" 20
  fail "sipp UAC: exit $rc, $succ successful, $failed failed (want $CALLS and 0)"
fi
ok "sipp: $succ calls successful, $failed failed, $retrans retransmissions, in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (rate $RATE/s, hold ${HOLD_MS} ms); peak $peak talking calls, $peak_socks relay sockets"
[ "$peak" -ge $((CALLS * 9 / 10)) ] || fail "at most $peak calls were up at once (expected about $CALLS concurrent)"
[ "$peak_socks" -ge $((CALLS * 4 * 9 / 10)) ] || fail "at most $peak_socks relay sockets open at once (expected about $((CALLS * 4)))"

# the callee UAS saw every call through (it ends after -m calls and its timewait)
for ((i = 0; i < 100; i++)); do alive "$upid" || break; sleep 0.1; done
usucc=$(stat_of "$E2E_TMP/uas.csv" 'SuccessfulCall(C)' 2>/dev/null || echo "?")
[ "$usucc" = "$CALLS" ] || fail "sipp UAS: $usucc successful calls (want $CALLS)"
stop_pid "$tpid" 3

# RTP relayed both ways: caller media port -> relay -> callee media port, and the echo back
read -r from_uac to_uas from_uas to_uac ports_uas ports_uac < <(tshark -r "$E2E_TMP/cap.pcap" -T fields -e udp.srcport -e udp.dstport 2>/dev/null |
  awk -v lo="$RTP_LO" -v hi="$RTP_HI" -v um="$umedia" -v cm="$cmedia" '
    $1 == cm && $2 >= lo && $2 <= hi { c++ }
    $1 >= lo && $1 <= hi && $2 == um { a++; pa[$1] = 1 }
    $1 == um && $2 >= lo && $2 <= hi { u++ }
    $1 >= lo && $1 <= hi && $2 == cm { b++; pb[$1] = 1 }
    END { printf "%d %d %d %d %d %d\n", c, a, u, b, length(pa), length(pb) }')
min=$((CALLS * 200)) # sipp plays 250 packets a call until its BYE; allow for the start and the end
if [ "$to_uas" -lt "$min" ] || [ "$to_uac" -lt "$min" ] || [ "$ports_uas" -lt "$CALLS" ] || [ "$ports_uac" -lt "$CALLS" ]; then
  fail "RTP through the relay: $to_uas packets to the callee from $ports_uas relay ports, $to_uac to the callers from $ports_uac (want >= $min from >= $CALLS ports each)"
fi
# on loopback the relay should lose nothing (1 % allowed)
if [ $((to_uas * 100)) -lt $((from_uac * 99)) ] || [ $((to_uac * 100)) -lt $((from_uas * 99)) ]; then
  fail "relay lost RTP: callers sent $from_uac, callee got $to_uas; callee echoed $from_uas, callers got $to_uac"
fi
ok "RTP through the relay: callers sent $from_uac packets, the callee got $to_uas (from $ports_uas relay ports), echoed $from_uas, the callers got $to_uac back (from $ports_uac)"

# call records: CALLS answered, from 200..299 to 101
cdr_ok() {
  "$PALISADE_BIN" cdr --json --limit 10000 --data "$data" | python3 -c '
import json, sys
recs, n = json.load(sys.stdin), int(sys.argv[1])
ans = [r for r in recs if r["disposition"] == "answered" and r["callee"] == "101"]
callers = {r["caller"] for r in ans}
errs = []
if len(recs) != n or len(ans) != n or len(callers) != n:
    errs.append(f"{len(recs)} records, {len(ans)} answered to 101, {len(callers)} distinct callers (want {n})")
short = [r for r in ans if not isinstance(r["duration_secs"], int) or r["duration_secs"] < 4]
if short:
    errs.append(f"{len(short)} records shorter than 4 s, e.g. {short[0]}")
by = {}
for r in ans:
    by[r["hung_up_by"]] = by.get(r["hung_up_by"], 0) + 1
if by.get("caller", 0) != n:
    errs.append(f"hung_up_by {by} (want caller for all)")
if errs:
    sys.exit("; ".join(errs))
d = sorted(r["duration_secs"] for r in ans)
print(f"{len(ans)} answered, durations {d[0]}..{d[-1]} s, hung up by caller")' "$CALLS"
}
for ((i = 0; i < 50; i++)); do
  cdr_ok >/dev/null 2>&1 && break
  sleep 0.1
done
msg=$(cdr_ok 2>&1) || fail "palisade cdr: $msg"
ok "palisade cdr: $msg"

sleep 0.5
calls=$("$PALISADE_BIN" calls --json --data "$data")
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$calls")" = 0 ] ||
  fail "palisade calls --json after the load: $(head -c 600 <<<"$calls")"
left=$(relay_sockets | wc -l)
[ "$left" = 0 ] || fail "palisade still holds $left UDP sockets in the relay range $RTP_LO-$RTP_HI: $(relay_sockets | head -8 | tr '\n' ' ')"
ok "afterwards: palisade calls empty, no palisade socket in $RTP_LO-$RTP_HI"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
