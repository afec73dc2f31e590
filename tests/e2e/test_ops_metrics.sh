#!/usr/bin/env bash
# Metrics, health and status (issue 18):
#   * `serve --metrics-listen` with a metrics_token: /metrics and /status without it (or with a wrong one) get
#     401; GET /health (no token) is 200 {"status":"ok"}; GET /metrics passes `promtool check metrics`
#     (Prometheus's own linter: HELP, TYPE, counter names) before and after load;
#   * values move with a sipp load: 10 registrations (reg_auth.xml) and 10 authenticated calls with RTP through
#     the relay (call_uac_rtp.xml -> sipp UAS), plus 3 wrong passwords: REGISTER and INVITE requests in, 401/407
#     and 200 responses out, relay packets and bytes, calls ended (answered), auth failures, store write latency
#     samples, registrations gauge; calls_active is seen > 0 while the calls are up;
#   * no label carries an extension number, auth ID or Call-ID;
#   * `palisade status` (exit 0, --json running with the same counts) while up; exit 3 "not running" after stop.
# Ports: signalling 26400-26599 (E2E range), relay 32000-32499.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26599}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox curl promtool

CALLS=10
RTP_LO=32000 RTP_HI=32499
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
for range in "101 101" "200 $((200 + CALLS - 1))" "600 609"; do
  # shellcheck disable=SC2086
  pal ext add-range $range 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" || fail "ext add-range $range"
done
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
TOKEN=e2e-metrics-token-0123456789
echo "metrics_token = \"$TOKEN\"" >"$data/palisade.toml"
sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 3.2 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

port=$(free_port)
mport=$(free_port)
tport=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tls:$HOST:$tport" --rtp-ports "$RTP_LO-$RTP_HI" \
  --metrics-listen "$HOST:$mport"
base=http://$HOST:$mport

health=$(curl -s -m 5 -w ' %{http_code}' "$base/health") || fail "GET /health"
case $health in *'"status":"ok"'*' 200') ;; *) fail "GET /health: $health" ;; esac
ok "GET /health: $health"

code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$base/metrics")
[ "$code" = 401 ] || fail "GET /metrics without the metrics_token: $code (expected 401)"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token-0123456789" "$base/status")
[ "$code" = 401 ] || fail "GET /status with a wrong token: $code (expected 401)"
ok "metrics_token: /metrics and /status refuse missing or wrong tokens (401); /health needs none"
scrape() { # scrape NAME: fetch /metrics into $E2E_TMP/NAME.prom and lint it
  curl -s -m 5 -f -H "Authorization: Bearer $TOKEN" "$base/metrics" -o "$E2E_TMP/$1.prom" || fail "GET /metrics ($1)"
  promtool check metrics <"$E2E_TMP/$1.prom" >"$E2E_TMP/$1.lint" 2>&1 || {
    show "$E2E_TMP/$1.lint" 20
    fail "promtool check metrics failed on the $1 scrape"
  }
}
# value NAME SERIES: the sample value of SERIES (a full name with labels, in the order printed), else 0
value() { awk -v s="$2" '$1 == s {print $2; f=1} END {if (!f) print 0}' "$E2E_TMP/$1.prom"; }
scrape before
ok "/metrics before load: $(grep -vc '^#' "$E2E_TMP/before.prom") samples, promtool check metrics: clean"

# --- load
ublock=$(free_port 6)
r=$(timeout -k 2 10 python3 "$E2E_DIR/call_client.py" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$ublock" --bind "$ublock") || fail "register 101: $r"
spawn "$E2E_TMP/uas.out" timeout -k 2 40 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$ublock" \
  -mi "$HOST" -mp $((ublock + 2)) -rtp_echo -m "$CALLS" -nostdin -timeout 30 -trace_err -error_file "$E2E_TMP/uas.err"
sleep 0.3
{
  echo SEQUENTIAL
  for n in $(seq 200 $((200 + CALLS - 1))); do echo "$n;$(cred "$n" 2);$(cred "$n" 3);101"; done
} >"$E2E_TMP/calls.csv"
cblock=$(free_port 6)
(cd "$E2E_TMP" && timeout -k 2 40 sipp "$HOST:$port" -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/calls.csv" \
  -i "$HOST" -p "$cblock" -mi "$HOST" -mp $((cblock + 2)) -r 20 -l "$CALLS" -m "$CALLS" -d 3000 \
  -nostdin -timeout 30 -trace_stat -stf "$E2E_TMP/uac.csv" -trace_err -error_file "$E2E_TMP/uac.err" \
  >"$E2E_TMP/uac.out" 2>&1 </dev/null) &
uac_pid=$!
E2E_PIDS+=("$uac_pid")
{
  echo SEQUENTIAL
  for n in $(seq 600 609); do echo "$n;$(cred "$n" 2);$(cred "$n" 3)"; done
} >"$E2E_TMP/reg.inf"
rport=$(free_port)
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/reg_auth.xml" -inf "$E2E_TMP/reg.inf" -t u1 \
  -i "$HOST" -p "$rport" -m 10 -r 20 -nostdin -timeout 20 -timeout_error -max_retrans 3 \
  -trace_err -error_file "$E2E_TMP/reg.err" >"$E2E_TMP/reg.out" 2>&1 </dev/null) || fail "sipp registrations"
timeout -k 2 20 python3 "$E2E_DIR/guard_client.py" "$HOST:$port" 127.0.0.3 auth 3 600 "$(cred 600 2)" WrongPassw0rd \
  >"$E2E_TMP/wrong.jsonl" || fail "guard_client wrong passwords"
peak=0
for ((i = 0; i < 30; i++)); do
  scrape during
  a=$(value during palisade_calls_active)
  [ "${a%.*}" -gt "$peak" ] && peak=${a%.*}
  [ "$peak" -ge 5 ] && break
  sleep 0.2
done
wait "$uac_pid" || fail "sipp calls: $(tail -3 "$E2E_TMP/uac.err" 2>/dev/null)"
sleep 1.2 # one store flush (500 ms) for the call records and events
scrape after

check_grew() { # check_grew SERIES MIN_INCREASE
  local b a
  b=$(value before "$1")
  a=$(value after "$1")
  python3 -c 'import sys; b, a, m = map(float, sys.argv[1:]); sys.exit(0 if a - b >= m else 1)' "$b" "$a" "$2" ||
    fail "$1 went from $b to $a (expected +$2 at least)"
  log "  $1: $b -> $a"
}
check_grew 'palisade_sip_requests_total{direction="in",method="REGISTER"}' 20
check_grew 'palisade_sip_requests_total{direction="in",method="INVITE"}' $((2 * CALLS))
check_grew 'palisade_sip_requests_total{direction="in",method="BYE"}' "$CALLS"
check_grew 'palisade_sip_responses_total{direction="out",code="401"}' 10
check_grew 'palisade_sip_responses_total{direction="out",code="407"}' "$CALLS"
check_grew 'palisade_sip_responses_total{direction="out",code="200"}' 20
check_grew 'palisade_sip_requests_total{direction="out",method="INVITE"}' "$CALLS"
check_grew 'palisade_sip_responses_total{direction="in",code="200"}' "$CALLS"
check_grew 'palisade_relay_packets_total{direction="in"}' $((CALLS * 100))
check_grew 'palisade_relay_packets_total{direction="out"}' $((CALLS * 100))
check_grew 'palisade_relay_bytes_total{direction="out"}' $((CALLS * 100 * 172))
check_grew 'palisade_calls_ended_total{disposition="answered"}' "$CALLS"
check_grew 'palisade_auth_failures_total{reason="wrong_password"}' 3
check_grew 'palisade_store_write_seconds_count' 1
check_grew 'palisade_registrations' 11
[ "$peak" -ge 1 ] || fail "palisade_calls_active never above 0 while $CALLS calls were up"
ok "values moved with the load (see the lines above); calls_active peaked at $peak"

# Every label set, without the status codes (code="200" is a status, not extension 200).
labels=$(grep -v '^#' "$E2E_TMP/after.prom" | grep -o '{[^}]*}' | sed 's/code="[0-9]*"//' | sort -u)
for n in 101 200 205 600 609 "$(cred 600 2)" "$(cred 200 2)"; do
  if printf '%s\n' "$labels" | grep -q "\"$n\""; then fail "a metric label carries '$n': $labels"; fi
done
if printf '%s\n' "$labels" | grep -qi 'call.id\|@'; then fail "a metric label carries a Call-ID or URI: $labels"; fi
ok "no extension number, auth ID or Call-ID in $(printf '%s\n' "$labels" | wc -l) distinct label sets"

# The same routes on the console's HTTPS listener (admin_networks, TLS), with the same token rule.
abase=https://$HOST:$PAL_ADMIN_PORT
code=$(curl -sk -m 5 -o /dev/null -w '%{http_code}' "$abase/metrics")
[ "$code" = 401 ] || fail "GET https /metrics on the admin listener without the token: $code (expected 401)"
curl -sk -m 5 -f -H "Authorization: Bearer $TOKEN" "$abase/metrics" -o "$E2E_TMP/admin.prom" ||
  fail "GET https /metrics on the admin listener"
promtool check metrics <"$E2E_TMP/admin.prom" >"$E2E_TMP/admin.lint" 2>&1 || {
  show "$E2E_TMP/admin.lint" 20
  fail "promtool check metrics failed on the admin listener's scrape"
}
a=$(value admin 'palisade_sip_requests_total{direction="in",method="INVITE"}')
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$a" "$((2 * CALLS))" ||
  fail "the admin listener's /metrics shows $a INVITEs in, expected at least $((2 * CALLS))"
health=$(curl -sk -m 5 -w ' %{http_code}' "$abase/health") || fail "GET https /health on the admin listener"
case $health in *'"status":"ok"'*' 200') ;; *) fail "GET https /health on the admin listener: $health" ;; esac
ok "the admin HTTPS listener serves /metrics (token required, promtool clean) and /health too"

pal status >"$E2E_TMP/status.txt" || fail "palisade status exited $? while running: $(cat "$E2E_TMP/status.txt")"
grep -q 'is running' "$E2E_TMP/status.txt" || fail "status: $(cat "$E2E_TMP/status.txt")"
sleep 5.5 # the status file is rewritten every 5 s
pal status --json >"$E2E_TMP/status.json" || fail "palisade status --json"
python3 - "$E2E_TMP/status.json" <<'PY' || fail "status --json (see above)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["running"] is True, s
assert s["server"]["counts"]["registrations"] >= 11, s["server"]["counts"]
assert s["server"]["listeners"], s
assert s["database"]["check"] == "ok" and s["database"]["schema"] == s["database"]["schema_latest"], s["database"]
assert s["server"]["version"].startswith("0."), s["server"]["version"]
assert s["server"]["certificate"]["days_left"] > 0, s["server"]["certificate"]
PY
ok "palisade status: $(head -1 "$E2E_TMP/status.txt")"
no_panic
pal_stop
rc=0
pal status >"$E2E_TMP/stopped.txt" || rc=$?
{ [ "$rc" = 3 ] && grep -q "not running" "$E2E_TMP/stopped.txt"; } || fail "status after stop: exit $rc, $(cat "$E2E_TMP/stopped.txt")"
ok "after stop: palisade status exits 3: $(head -1 "$E2E_TMP/stopped.txt")"

# The Grafana dashboard in the repository only queries metrics this server exports.
python3 - "$REPO_ROOT/packaging/grafana/palisade-dashboard.json" "$E2E_TMP/after.prom" <<'PY' || fail "dashboard (see above)"
import json, re, sys
dash = json.load(open(sys.argv[1]))
exported = {l.split("{")[0].split()[0] for l in open(sys.argv[2]) if l.strip() and not l.startswith("#")}
used = set()
for p in dash["panels"]:
    for t in p["targets"]:
        used |= set(re.findall(r"\b((?:palisade|process)_[a-z_]+)", t["expr"]))
missing = sorted(used - exported)
if missing:
    sys.exit(f"the dashboard queries metrics /metrics does not export: {missing}")
print(f"{len(dash['panels'])} panels, {len(used)} metrics, all exported")
PY
ok "Grafana dashboard packaging/grafana/palisade-dashboard.json queries only exported metrics"
