#!/usr/bin/env bash
# LAN-only extensions register only from the local networks. `policy set local_networks 127.0.0.1/32`;
# 300 is `--lan-only true`, 301 is not. Over UDP, with guard_client.py (REGISTER -> 401 -> REGISTER with an
# MD5 digest, from a chosen source address) and sipp (scenarios/reg_auth.xml) as a real client:
#   * 300 from 127.0.0.1 -> 200 (a binding from 127.0.0.1);
#   * 300 from 127.0.0.2 with the right password -> 403, a policy_refusal event lan_only from 127.0.0.2
#     (without the password), no binding from 127.0.0.2; sipp from 127.0.0.2 fails with 403, sipp from
#     127.0.0.1 registers;
#   * controls: 301 (not LAN-only) registers from 127.0.0.2; after `policy set local_networks 127.0.0.0/30` on
#     the running server, 300 registers from 127.0.0.2 too.
# Ports 31400-31499.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31400 E2E_PORT_MAX=31499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

INSIDE=127.0.0.1 OUTSIDE=127.0.0.2
GC=$E2E_DIR/guard_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 300 301 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 300 301"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
pal ext set 300 --lan-only true >/dev/null || fail "ext set 300 --lan-only true"
pal policy set local_networks 127.0.0.1/32 >/dev/null || fail "policy set local_networks 127.0.0.1/32"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# reg SRC NUMBER -> "CHALLENGE FINAL" of one authenticated registration from SRC
reg() {
  local out
  out=$(timeout -k 2 10 python3 "$GC" "$HOST:$port" "$1" auth 1 "$2" "$(cred "$2" 2)" "$(cred "$2" 3)" --timeout 2) ||
    fail "guard_client auth from $1 as $2: $out"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1].splitlines()[-1]); print(r["challenge"], r["final"])' "$out"
}
# bindings NUMBER -> the source addresses of NUMBER's bindings, sorted, space-separated
bindings() {
  pal registrations --json | python3 -c '
import json, re, sys
rows = json.load(sys.stdin)
ips = set()
for r in rows:
    if str(r.get("extension", r.get("number"))) != sys.argv[1]:
        continue
    s = json.dumps(r)
    ips.update(re.findall(r"127\.0\.0\.\d+", s))
print(" ".join(sorted(ips)))' "$1"
}
# has_binding NUMBER IP: NUMBER has a binding from IP (registrations are written behind: wait up to 3 s)
has_binding() {
  local i
  for ((i = 0; i < 30; i++)); do
    case " $(bindings "$1") " in *" $2 "*) return 0 ;; esac
    sleep 0.1
  done
  return 1
}
refusals() { pal events --kind policy_refusal --json --limit 1000; }

# ---- 1. inside: 200
r=$(reg "$INSIDE" 300)
[ "$r" = "401 200" ] || fail "300 from $INSIDE (inside local_networks): expected 401 then 200, got $r"
has_binding 300 "$INSIDE" || fail "300 has no binding from $INSIDE after its 200: $(pal registrations --json)"
ok "300 (lan-only) from $INSIDE: $r; bindings from: $(bindings 300)"

# ---- 2. outside: 403, event, no binding
r=$(reg "$OUTSIDE" 300)
[ "$r" = "401 403" ] || fail "300 from $OUTSIDE (outside local_networks 127.0.0.1/32): expected 401 then 403, got $r"
for ((i = 0; i < 30; i++)); do
  refusals | grep -q lan_only && break
  sleep 0.1
done
ev=$(refusals | python3 -c '
import json, sys
ev = [e for e in json.load(sys.stdin) if e.get("reason") == "lan_only"]
print(json.dumps(ev[0]) if ev else "")')
[ -n "$ev" ] || fail "no policy_refusal event with reason lan_only after the 403 (policy_refusal events: $(refusals))"
case $ev in *"$OUTSIDE"*) ;; *) fail "the lan_only event does not name the source $OUTSIDE: $ev" ;; esac
case $ev in *"$(cred 300 3)"*) fail "the lan_only event holds the password: $ev" ;; esac
sleep 1 # the write-behind interval is 0.5 s
case " $(bindings 300) " in *" $OUTSIDE "*) false ;; esac || fail "300 has a binding from $OUTSIDE after the 403: $(pal registrations --json)"
ok "300 (lan-only) from $OUTSIDE: $r; event $ev; bindings of 300 from: $(bindings 300)"

# ---- 3. a real client: sipp from each address
sipp_reg() { # SRC NAME -> sipp's exit status; statuses in $E2E_TMP/NAME.msg
  local lport rc=0
  lport=$(free_port)
  {
    echo SEQUENTIAL
    echo "300;$(cred 300 2);$(cred 300 3)"
  } >"$E2E_TMP/$2.csv"
  timeout -k 2 20 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" -inf "$E2E_TMP/$2.csv" -i "$1" \
    -p "$lport" -m 1 -nostdin -timeout 15 -recv_timeout 5000 -trace_msg -message_file "$E2E_TMP/$2.msg" \
    >"$E2E_TMP/$2.out" 2>&1 </dev/null || rc=$?
  return "$rc"
}
statuses() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^SIP/2.0 ' | tr '\n' '|'; }
rc=0
sipp_reg "$INSIDE" sipp_in || rc=$?
[ "$rc" = 0 ] || fail "sipp REGISTER of 300 from $INSIDE: exit $rc ($(statuses sipp_in))"
rc=0
sipp_reg "$OUTSIDE" sipp_out || rc=$?
st=$(statuses sipp_out)
[ "$rc" != 0 ] || fail "sipp REGISTER of 300 from $OUTSIDE succeeded ($st)"
case $st in *"SIP/2.0 403 "*) ;; *) fail "sipp REGISTER of 300 from $OUTSIDE: expected a 403, got '$st'" ;; esac
ok "sipp: 300 from $INSIDE registered ($(statuses sipp_in | sed 's/|$//')); from $OUTSIDE: ${st%|} (exit $rc)"

# ---- 4. controls: 127.0.0.2 can register a non-LAN-only extension; widening local_networks lets 300 in
r=$(reg "$OUTSIDE" 301)
[ "$r" = "401 200" ] || fail "control: 301 (not lan-only) from $OUTSIDE: expected 401 then 200, got $r"
ok "control: 301 (not lan-only) from $OUTSIDE: $r"
pal policy set local_networks 127.0.0.0/30 >/dev/null || fail "policy set local_networks 127.0.0.0/30"
t0=$(date +%s%N)
for ((i = 0; i < 8; i++)); do
  r=$(reg "$OUTSIDE" 300)
  [ "$r" = "401 200" ] && break
  sleep 0.25
done
[ "$r" = "401 200" ] || fail "300 from $OUTSIDE after local_networks 127.0.0.0/30: expected 401 then 200, got $r"
has_binding 300 "$OUTSIDE" || fail "300 has no binding from $OUTSIDE after its 200: $(pal registrations --json)"
ok "control: local_networks 127.0.0.0/30 on the running server -> 300 from $OUTSIDE: $r after $((($(date +%s%N) - t0) / 1000000)) ms; bindings from: $(bindings 300)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
