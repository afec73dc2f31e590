#!/usr/bin/env bash
# A node dies (`kill -9`) and the cluster carries on (issue 17, docs/cluster.md). A throwaway PostgreSQL
# (pg_lib.sh), nodes n1 (127.0.0.31) and n2 (127.0.0.32), and a provider's registrar (sipp UAS,
# scenarios/trunk_register_uas.xml) at 127.0.0.33 for the trunk `carrier` with registration on.
#   * the trunk is registered by exactly one node: n1 (started first) takes its lease and registers it; n2
#     sends no REGISTER to the provider while n1 is alive;
#   * baresip 201 registers at n1, 202 at n2; extension 203 is added (the CLI acknowledges it) and n1 is killed
#     with SIGKILL at once;
#   * n2 takes the trunk's lease and registers the trunk within seconds (measured from the kill to the first
#     REGISTER from n2's address) and PostgreSQL's trunk status says registered;
#   * 201 re-registers at the survivor (a phone following DNS to another node) and 202 calls it: the call is
#     established; PostgreSQL now tags 201's registration with n2;
#   * 203, added just before the kill, is there: it registers at n2 with the credentials the CLI printed.
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
need baresip sipp python3 ss psql
trap 'e2e_cleanup; pg_stop' EXIT

N1=127.0.0.31 N2=127.0.0.32 PROV=127.0.0.33
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42
CTRL=$E2E_DIR/baresip_ctrl.py
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
sql() { psql -XAtq "$PG_URL" -c "$1"; }
pal() { "$PALISADE_BIN" "$@" --data "$E2E_TMP/admin" --database "$PG_URL"; }

pg_start || fail "could not start PostgreSQL (see above)"
csv=$E2E_TMP/credentials.csv
pal ext add-range 201 202 >"$csv" 2>"$E2E_TMP/add.err" || {
  show "$E2E_TMP/add.err"
  fail "ext add-range 201 202 --database"
}
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

# The provider: a sipp registrar counting what each node sends (by the Via each REGISTER carries).
pport=$(free_port)
printf 'SEQUENTIAL\n%s;%s\n' "$TRUNK_USER" "$TRUNK_PASS" >"$E2E_TMP/creds.csv"
spawn "$E2E_TMP/prov.out" timeout -k 2 80 sipp -sf "$E2E_DIR/scenarios/trunk_register_uas.xml" \
  -inf "$E2E_TMP/creds.csv" -i "$PROV" -p "$pport" -m 20 -nostdin -timeout 75 -trace_msg \
  -message_file "$E2E_TMP/prov.msg"
sleep 0.5
registers_from() { # NODE_IP: REGISTERs received from that node
  python3 - "$E2E_TMP/prov.msg" "$1" <<'PY'
import re, sys
try:
    text = open(sys.argv[1], errors="replace").read().replace("\r\n", "\n")
except FileNotFoundError:
    text = ""
msgs = re.split(r"\n(?=REGISTER |SIP/2.0 )", text)
print(sum(1 for m in msgs if m.lstrip().startswith("REGISTER ") and
          re.search(r"^Via: SIP/2.0/UDP " + re.escape(sys.argv[2]) + ":", m, re.M | re.I)))
PY
}
pal trunk add carrier --host "$PROV" --port "$pport" --username "$TRUNK_USER" --password "$TRUNK_PASS" \
  --register on --source "$PROV/32" >/dev/null || fail "trunk add carrier"

p1=$(free_port)
p2=$(free_port)
pal_start "$E2E_TMP/n1" --database "$PG_URL" --node n1 --listen "udp:$N1:$p1" --rtp-ports 26540-26569
N1_PID=$PAL_PID N1_ERR=$PAL_ERR
for ((i = 0; i < 60; i++)); do
  [ "$(registers_from $N1)" -ge 2 ] && break
  sleep 0.1
done
[ "$(registers_from $N1)" -ge 2 ] || {
  show "$N1_ERR" 30
  fail "n1 did not register the trunk (REGISTERs from $N1: $(registers_from $N1))"
}
pal_start "$E2E_TMP/n2" --database "$PG_URL" --node n2 --listen "udp:$N2:$p2" --rtp-ports 26570-26599
N2_PID=$PAL_PID N2_ERR=$PAL_ERR
ok "n1 holds the trunk lease and registered carrier ($(registers_from $N1) REGISTERs incl. the challenge)"

d=$E2E_TMP/phones
sa=$(free_port 3)
sb=$(free_port 3)
baresip_conf "$d/a" "$sa" $((sa + 2)) 26500 26519 440 \
  "<sip:201@$N1:$p1;transport=udp>;auth_user=$(cred 201 2);auth_pass=$(cred 201 3);answermode=auto;regint=600"
baresip_conf "$d/b" "$sb" $((sb + 2)) 26520 26539 880 \
  "<sip:202@$N2:$p2;transport=udp>;auth_user=$(cred 202 2);auth_pass=$(cred 202 3);answermode=auto;regint=600"
spawn "$d/a.log" timeout -k 2 70 baresip -f "$d/a" -t 65
A_PID=$BG_PID
spawn "$d/b.log" timeout -k 2 70 baresip -f "$d/b" -t 65
for ((i = 0; i < 100; i++)); do
  grep -q "201@$N1: {0/UDP/v4} 200 OK" "$d/a.log" && grep -q "202@$N2: {0/UDP/v4} 200 OK" "$d/b.log" && break
  sleep 0.1
done
if ! grep -q "201@$N1: {0/UDP/v4} 200 OK" "$d/a.log" || ! grep -q "202@$N2: {0/UDP/v4} 200 OK" "$d/b.log"; then
  fail "baresip 201 (at n1) and 202 (at n2) did not both register"
fi
# Two lease attempts of n2 (every 2 s) while n1 is alive.
sleep 4.5
n2_before=$(registers_from $N2)
[ "$n2_before" = 0 ] || fail "n2 sent $n2_before REGISTERs to the provider while n1 held the trunk"
ok "201 at n1, 202 at n2; n2 sent no REGISTER to the provider while n1 held the trunk"

# An extension the CLI acknowledges, then n1 dies at once.
pal ext add 203 --json >"$E2E_TMP/203.json" 2>"$E2E_TMP/203.err" || fail "ext add 203: $(cat "$E2E_TMP/203.err")"
kill -KILL "$N1_PID"
t_kill=$(date +%s%N)
wait "$N1_PID" 2>/dev/null || true
for ((i = 0; i < 150; i++)); do
  [ "$(registers_from $N2)" -ge 1 ] && break
  sleep 0.05
done
t_reg=$(date +%s%N)
[ "$(registers_from $N2)" -ge 1 ] || {
  show "$N2_ERR" 30
  fail "n2 sent no REGISTER to the provider within 7.5 s of n1's kill -9"
}
takeover_ms=$(((t_reg - t_kill) / 1000000))
for ((i = 0; i < 50; i++)); do
  state=$(sql "SELECT state FROM trunk_status WHERE trunk = 'carrier'")
  [ "$state" = registered ] && break
  sleep 0.1
done
[ "$state" = registered ] || fail "after the takeover the trunk status in PostgreSQL is '$state', expected registered"
ok "n1 killed (-9): n2 sent its first REGISTER for carrier ${takeover_ms} ms later; trunk status: $state"

# 201 follows DNS to the survivor.
ctrl "$HOST:$((sa + 2))" --timeout 2 quit >/dev/null 2>&1 || true
stop_pid "$A_PID" 2
rm -rf "$d/a"
sa2=$(free_port 3)
baresip_conf "$d/a" "$sa2" $((sa2 + 2)) 26500 26519 440 \
  "<sip:201@$N2:$p2;transport=udp>;auth_user=$(cred 201 2);auth_pass=$(cred 201 3);answermode=auto;regint=600"
spawn "$d/a2.log" timeout -k 2 40 baresip -f "$d/a" -t 35
for ((i = 0; i < 100; i++)); do
  grep -q "201@$N2: {0/UDP/v4} 200 OK" "$d/a2.log" && break
  sleep 0.1
done
grep -q "201@$N2: {0/UDP/v4} 200 OK" "$d/a2.log" || {
  show "$d/a2.log"
  fail "201 did not re-register at n2"
}
if ! ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:201@$N2:$p2" >"$E2E_TMP/dial.json" 2>&1; then
  show "$E2E_TMP/dial.json"
  show "$N2_ERR" 30
  fail "202 -> 201 after the failover: no CALL_ESTABLISHED"
fi
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null 2>&1 || true
# Its old binding (tagged n1, with baresip's old port) stays until it expires, ignored: n1's heartbeat is stale.
for ((i = 0; i < 30; i++)); do
  node=$(sql "SELECT node FROM registrations WHERE aor = '201' AND contact_uri LIKE '%:$sa2%'")
  [ "$node" = n2 ] && break
  sleep 0.1
done
[ "$node" = n2 ] || fail "201's new registration is tagged '$node' in PostgreSQL, expected n2"
ok "201 re-registered at n2 (tagged n2 in PostgreSQL) and 202's call to it was established"

# 203, acknowledged just before the kill, is there and works at n2.
read -r auth_id password < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["auth_id"], d["password"])' "$E2E_TMP/203.json")
out=$E2E_TMP/203.reg.json
timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$N2:$p2" udp 203 "$auth_id" "$password" >"$out" 2>&1 ||
  fail "reg_client 203 at n2: $(cat "$out")"
code=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("final", d["challenge"])["code"])' "$out")
[ "$code" = 200 ] || fail "203 (added just before the kill) registering at n2 got $code, expected 200"
ok "203, added just before n1 was killed, registers at n2 (200)"

alive "$N2_PID" || fail "n2 died"
no_panic "$N1_ERR"
no_panic "$N2_ERR"
pal_stop "$N2_PID"
