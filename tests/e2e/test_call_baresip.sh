#!/usr/bin/env bash
# Two real softphones call each other through Palisade: headless baresip A (extension 100, a 440 Hz
# sine as microphone) and B (101, 880 Hz, auto-answer), both registered, once over UDP (A hangs up)
# and once over TCP (B hangs up). Each case:
#   * A dials 101 through ctrl_tcp; both sides report the call established; `palisade calls` lists it
#     (talking, 100 -> 101) and palisade holds four UDP sockets in the relay range;
#   * after ~4.5 s each side's received audio (sndfile *dec.wav) has the other's frequency (sox,
#     within 10 %): 880 Hz at A, 440 Hz at B;
#   * A puts the call on hold (re-INVITE sendonly) and resumes it (sendrecv): the call stays up and,
#     on the loopback capture, RTP flows again after the resume from the relay's ports to each phone,
#     and decodes to the other side's frequency;
#   * the hanging-up side ends the call and the other side sees CALL_CLOSED;
#   * `palisade cdr --json` holds one more record: answered, 100 -> 101, hung_up_by caller/callee,
#     duration >= 7 s (the call lasts ~9 s).
# At the end `palisade calls --json` is empty and palisade has no UDP socket left in the relay range.
# Ports: SIP/ctrl 29000-29099, baresip RTP 29100-29139, palisade relay 29200-29299.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29000 E2E_PORT_MAX=29099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 ss sox tshark

RTP_LO=29200 RTP_HI=29299
CTRL=$E2E_DIR/baresip_ctrl.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"


ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }
relay_sockets() { ss -Huanp | awk -v pid="$PAL_PID" -v lo="$RTP_LO" -v hi="$RTP_HI" '$0 ~ "pid=" pid "," {
  n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print $4 }'; }

# RTP from the relay (source port in RTP_LO..RTP_HI) to a phone's RTP range after epoch time T,
# decoded (PCMU/PCMA) into a raw file; prints "PACKETS FREQUENCY".
rtp_after() { # pcap dst_lo dst_hi T out
  local pcap=$1 lo=$2 hi=$3 t=$4 out=$5
  tshark -r "$pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.p_type -e rtp.payload \
    -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= $lo && udp.dstport <= $hi && frame.time_epoch > $t" \
    2>/dev/null | python3 -c '
import sys
pt, n, out = None, 0, open(sys.argv[1], "wb")
for line in sys.stdin:
    f = line.split()
    if len(f) != 2 or f[0] not in ("0", "8"):
        continue
    pt = f[0]
    out.write(bytes.fromhex(f[1].replace(":", "")))
    n += 1
print(n, "ul" if pt == "0" else "al")' "$out.raw" >"$out.meta"
  local n enc
  read -r n enc <"$out.meta"
  if [ "$n" -gt 0 ]; then
    echo "$n $(sox -t "$enc" -r 8000 -c 1 "$out.raw" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')"
  else
    echo "0 none"
  fi
}

# The call records, newest first, checked by python: count, then fields of the newest.
cdr_check() { # want_count hung_up_by
  "$PALISADE_BIN" cdr --json --data "$data" | python3 -c '
import json, sys
recs = json.load(sys.stdin)
want, by = int(sys.argv[1]), sys.argv[2]
if len(recs) != want:
    sys.exit(f"{len(recs)} call records, expected {want}: {recs}")
r = max(recs, key=lambda r: r["id"])
errs = []
for k, v in (("caller", "100"), ("callee", "101"), ("disposition", "answered"), ("hung_up_by", by)):
    if r.get(k) != v:
        errs.append(f"{k}={r.get(k)!r} (expected {v!r})")
d = r.get("duration_secs")
if not isinstance(d, int) or not 7 <= d <= 20:
    errs.append(f"duration_secs={d!r} (expected 7..20)")
if not r.get("answered_at") or not r.get("ended_at"):
    errs.append("answered_at/ended_at missing")
if errs:
    sys.exit("newest call record: " + ", ".join(errs) + f": {r}")
print("%s->%s %s hung_up_by=%s duration=%ss reason=%s" % (r["caller"], r["callee"], r["disposition"], r["hung_up_by"], d, r.get("reason")))
' "$1" "$2"
}

ncase=0
run_case() { # transport hangup_side(a|b)
  local tp=$1 hanger=$2 d sa sb ca cb apid bpid tpid i t_resume by
  ncase=$((ncase + 1))
  d=$E2E_TMP/$tp
  mkdir -p "$d"
  sa=$(free_port 3) # SIP udp/tcp, tls (+1), ctrl (+2)
  ca=$((sa + 2))
  for ((i = 0; i < 20; i++)); do # not overlapping A's three ports (A is not listening yet)
    sb=$(free_port 3)
    [ "$sb" -gt $((sa + 2)) ] || [ $((sb + 2)) -lt "$sa" ] && break
  done
  cb=$((sb + 2))
  baresip_conf "$d/a" "$sa" "$ca" 29100 29119 440 \
    "<sip:100@$HOST:$port;transport=$tp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
  baresip_conf "$d/b" "$sb" "$cb" 29120 29139 880 \
    "<sip:101@$HOST:$port;transport=$tp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"

  # loopback capture of signalling and media (self-terminating)
  spawn "$d/tshark.log" timeout -k 2 60 tshark -i lo -F pcap -a duration:50 -w "$d/cap.pcap" \
    -f "port $port or portrange 29100-29139 or portrange $RTP_LO-$RTP_HI"
  tpid=$BG_PID
  for ((i = 0; i < 50; i++)); do
    grep -q 'Capturing on' "$d/tshark.log" && break
    sleep 0.1
  done
  spawn "$d/b.log" timeout -k 2 50 baresip -f "$d/b" -t 45
  bpid=$BG_PID
  spawn "$d/a.log" timeout -k 2 50 baresip -f "$d/a" -t 45
  apid=$BG_PID
  local TP=${tp^^}
  for ((i = 0; i < 100; i++)); do
    grep -q "100@$HOST: {0/$TP/v4} 200 OK" "$d/a.log" && grep -q "101@$HOST: {0/$TP/v4} 200 OK" "$d/b.log" && break
    sleep 0.1
  done
  if ! grep -q "101@$HOST: {0/$TP/v4} 200 OK" "$d/b.log" || ! grep -q "100@$HOST: {0/$TP/v4} 200 OK" "$d/a.log"; then
    show "$d/a.log"
    show "$d/b.log"
    fail "$tp: baresip A (100) and B (101) did not both register ({0/$TP/v4} 200 OK)"
  fi
  ok "$tp: 100 and 101 registered ({0/$TP/v4} 200 OK)"

  if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial.json" 2>&1; then
    show "$d/dial.json"
    show "$d/a.log" 30
    show "$d/b.log" 30
    show "$PAL_ERR" 30
    fail "$tp: A dialled 101: no CALL_ESTABLISHED within 10 s"
  fi
  for ((i = 0; i < 20; i++)); do
    grep -q "101@$HOST: Call established" "$d/b.log" && break
    sleep 0.1
  done
  grep -q "101@$HOST: Call established" "$d/b.log" || {
    show "$d/b.log" 30
    fail "$tp: A is in the call but B does not say 'Call established'"
  }
  ok "$tp: A dialled 101, call established on both sides"

  local calls
  for ((i = 0; i < 30; i++)); do
    calls=$("$PALISADE_BIN" calls --json --data "$data")
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="100" and c[0]["callee"]=="101" and c[0]["state"]=="talking"))' "$calls" && break
    sleep 0.1
  done
  python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="100" and c[0]["callee"]=="101" and c[0]["state"]=="talking"))' "$calls" ||
    fail "$tp: palisade calls --json does not show one talking call 100->101: $calls"
  local socks
  socks=$(relay_sockets | sort | tr '\n' ' ')
  [ "$(wc -w <<<"$socks")" = 4 ] || fail "$tp: during the call palisade holds $(wc -w <<<"$socks") UDP sockets in $RTP_LO-$RTP_HI, expected 4: $socks"
  ok "$tp: palisade calls: one talking call 100->101; relay sockets $socks"

  sleep 4.5

  ctrl "$HOST:$ca" --timeout 5 hold >"$d/hold.json" 2>&1 || fail "$tp: hold command refused: $(cat "$d/hold.json")"
  sleep 1.5
  t_resume=$(date +%s.%N)
  ctrl "$HOST:$ca" --timeout 5 resume >"$d/resume.json" 2>&1 || fail "$tp: resume command refused: $(cat "$d/resume.json")"
  sleep 2.5
  if ! alive "$apid" || ! alive "$bpid"; then fail "$tp: a baresip died during hold/resume"; fi
  if grep -qE "terminated|session closed" "$d/a.log" "$d/b.log"; then
    show "$d/a.log" 20
    show "$d/b.log" 20
    fail "$tp: the call ended during hold/resume"
  fi

  # the other side watches for the end of the call while this side hangs up
  local hc oc other
  if [ "$hanger" = a ]; then hc=$ca oc=$cb other=B by=caller; else hc=$cb oc=$ca other=A by=callee; fi
  spawn "$d/closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$oc" --wait-event CALL_CLOSED --timeout 10
  local wpid=$BG_PID
  sleep 0.3
  ctrl "$HOST:$hc" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup.json" 2>&1 ||
    fail "$tp: hangup by ${hanger^^}: no CALL_CLOSED: $(cat "$d/hangup.json")"
  local rc=0
  for ((i = 0; i < 100; i++)); do alive "$wpid" || break; sleep 0.1; done
  wait "$wpid" || rc=$?
  [ "$rc" = 0 ] || {
    show "$d/closed.json"
    fail "$tp: ${hanger^^} hung up but $other saw no CALL_CLOSED"
  }
  ok "$tp: ${hanger^^} hung up, $other saw CALL_CLOSED ($(grep -o '"param":"[^"]*"' "$d/closed.json" | tail -1))"

  local cdr
  for ((i = 0; i < 40; i++)); do
    cdr=$(cdr_check "$ncase" "$by" 2>&1) && break
    sleep 0.1
  done
  cdr=$(cdr_check "$ncase" "$by" 2>&1) || fail "$tp: palisade cdr: $cdr"
  ok "$tp: call record: $cdr"

  ctrl "$HOST:$ca" --timeout 2 quit >/dev/null 2>&1 || true
  ctrl "$HOST:$cb" --timeout 2 quit >/dev/null 2>&1 || true
  wait_exit "$apid" 5 || true
  wait_exit "$bpid" 5 || true
  stop_pid "$apid" 2
  stop_pid "$bpid" 2
  sleep 0.5
  stop_pid "$tpid" 3

  # sndfile writes the WAV header when the stream stops (at hold): read the dumps now
  local fa fb wa wb la lb
  wa=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
  wb=$(find "$d/b/snd" -name '*dec.wav' | sort | head -1)
  if [ -z "$wa" ] || [ -z "$wb" ]; then fail "$tp: no received-audio dump (sndfile *dec.wav) at A or B"; fi
  fa=$(freq "$wa")
  fb=$(freq "$wb")
  la=$(soxi -D "$wa" 2>/dev/null || echo 0)
  lb=$(soxi -D "$wb" 2>/dev/null || echo 0)
  if ! near "$fa" 880 || ! near "$fb" 440; then
    fail "$tp: received audio: A got ${fa:-?} Hz in ${la}s (want 880), B got ${fb:-?} Hz in ${lb}s (want 440)"
  fi
  ok "$tp: received audio (sndfile dumps, up to the hold): A ${fa} Hz in ${la}s (want 880), B ${fb} Hz in ${lb}s (want 440)"

  # media after the resume, from the capture: relay -> A and relay -> B, decoded
  local ra rb
  ra=$(rtp_after "$d/cap.pcap" 29100 29119 "$t_resume" "$d/rx_a")
  rb=$(rtp_after "$d/cap.pcap" 29120 29139 "$t_resume" "$d/rx_b")
  local na=${ra% *} nb=${rb% *}
  if [ "$na" -lt 50 ] || [ "$nb" -lt 50 ] || ! near "${ra#* }" 880 || ! near "${rb#* }" 440; then
    tshark -r "$d/cap.pcap" -Y sip 2>/dev/null | grep -v REGISTER | tail -30 >&2 || true
    fail "$tp: after resume: relay->A $na RTP packets at ${ra#* } Hz (want >=50 at 880), relay->B $nb at ${rb#* } Hz (want >=50 at 440)"
  fi
  local reinv
  reinv=$(tshark -r "$d/cap.pcap" -Y 'sip.Method == "INVITE" && sdp' -T fields -e sdp.media_attr 2>/dev/null |
    grep -oE 'sendonly|recvonly|inactive|sendrecv' | tr '\n' ' ')
  ok "$tp: after resume RTP through the relay: A got $na packets at ${ra#* } Hz, B got $nb at ${rb#* } Hz (INVITE directions on the wire: $reinv)"
}

run_case udp a
# baresip unregisters when it quits; wait for the bindings to go so the TCP case rings one contact each
for ((i = 0; i < 30; i++)); do
  [ "$("$PALISADE_BIN" registrations --json --data "$data" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] && break
  sleep 0.1
done
run_case tcp b

sleep 0.5
calls=$("$PALISADE_BIN" calls --json --data "$data")
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$calls")" = 0 ] ||
  fail "palisade calls --json after both calls: $calls"
left=$(relay_sockets | tr '\n' ' ')
[ -z "$left" ] || fail "palisade still holds UDP sockets in the relay range $RTP_LO-$RTP_HI: $left"
ok "after both calls: palisade calls empty, no palisade socket in $RTP_LO-$RTP_HI"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
