#!/usr/bin/env bash
# Passwords never need to be on a command line, where every local user reads them (`ps`, /proc/PID/cmdline).
#   * `ext add --password-stdin`, caught while it waits for its standard input: /proc/PID/cmdline holds no
#     password (with --password it would; that flag still works and is documented as visible);
#   * `ext add 601 --password-stdin` and later `ext reset-password 601 --password-stdin` on the running server:
#     sipp (scenarios/reg_auth.xml) registers with the password given on stdin (401, then 200), and the old one
#     is refused after the reset;
#   * `trunk add carrier --password-stdin --register`: a sipp registrar (scenarios/trunk_register_uas.xml,
#     verifyauth) accepts Palisade's answer to its challenge, so the stored password is the one from stdin;
#   * on a terminal (a pty from `script`), `trunk add --username U` without a password flag asks for it twice
#     without echo: the typed password never appears in the output and the trunk has one; two different
#     answers add nothing;
#   * a sampler reading every /proc/*/cmdline every 5 ms for the whole test finds none of the passwords.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27200 E2E_PORT_MAX=27299
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss script

EXT_PW=Stdin-Ext-Pw-7391 NEW_PW=Stdin-New-Pw-5518 TRUNK_PW=Stdin-Trunk-Pw-2206 TYPED_PW=Typed-Trunk-Pw-9034
AUTH_ID=desk601stdin TRUNK_USER=palisade-trunk PROV=127.0.0.72
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# contains FILE TEXT: whether FILE holds TEXT, in bash alone (a grep would put the password on its own command
# line, where the sampler below rightly finds it)
contains() { [[ $(<"$1") == *"$2"* ]]; }

# ---- the sampler: every process's command line, every 5 ms, until told to stop
printf '%s\n' "$EXT_PW" "$NEW_PW" "$TRUNK_PW" "$TYPED_PW" >"$E2E_TMP/secrets"
cat >"$E2E_TMP/sampler.py" <<'PY'
import os, sys, time
secrets = [s.encode() for s in open(sys.argv[1]).read().split()]
stop, samples, hits = sys.argv[2], 0, set()
deadline = time.time() + 100
while not os.path.exists(stop) and time.time() < deadline:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        for s in secrets:
            if s in cmd:
                hits.add((pid, cmd.replace(b"\0", b" ").decode(errors="replace")))
    samples += 1
    time.sleep(0.005)
print(f"samples {samples}")
for pid, cmd in sorted(hits):
    print(f"hit {pid}: {cmd}")
PY
spawn "$E2E_TMP/sampler.out" python3 "$E2E_TMP/sampler.py" "$E2E_TMP/secrets" "$E2E_TMP/sampler.stop"
SAMPLER=$BG_PID

# held_cmdline ARGS...: runs `palisade ARGS --data DATA` with a standard input that stays open and empty (a FIFO
# opened read-write), so the process waits; prints its /proc/PID/cmdline (NULs as spaces) once it is palisade,
# then writes HELD_INPUT to it and waits for it to finish (its stdout in $E2E_TMP/held.out).
held_cmdline() {
  local fifo=$E2E_TMP/held.fifo pid i exe cmdline=""
  rm -f "$fifo"
  mkfifo "$fifo"
  exec 3<>"$fifo"
  "$PALISADE_BIN" "$@" --data "$data" <&3 >"$E2E_TMP/held.out" 2>"$E2E_TMP/held.err" &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [ "$exe" = "$(readlink -f "$PALISADE_BIN")" ]; then
      cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
      break
    fi
    sleep 0.02
  done
  printf '%s\n' "$HELD_INPUT" >&3
  exec 3>&-
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/held.err"
    fail "palisade $* exited $rc"
  }
  rm -f "$fifo"
  printf '%s\n' "$cmdline"
}

# ---- 1. no password in the command line of ext add --password-stdin
HELD_INPUT=$EXT_PW
cmd=$(held_cmdline ext add 601 --auth-id "$AUTH_ID" --password-stdin --json)
case $cmd in *"ext add 601"*"--password-stdin"*) ;; *) fail "did not catch ext add's command line: '$cmd'" ;; esac
case $cmd in *"$EXT_PW"*) fail "the password is in the command line: '$cmd'" ;; esac
contains "$E2E_TMP/held.out" "$EXT_PW" && fail "ext add echoed the password given on stdin: $(cat "$E2E_TMP/held.out")"
ok "ext add --password-stdin: command line '$cmd' (no password), password not echoed"

# ---- 2. the extension registers with the password from stdin
port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"
# sipp_register NAME PASSWORD: one authenticated REGISTER of 601 with PASSWORD; exit status of sipp
sipp_register() {
  local lport
  lport=$(free_port)
  printf 'SEQUENTIAL\n601;%s;%s\n' "$AUTH_ID" "$2" >"$E2E_TMP/$1.inf"
  (cd "$E2E_TMP" && timeout -k 2 20 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" \
    -inf "$E2E_TMP/$1.inf" -t u1 -i "$HOST" -p "$lport" -m 1 -nostdin -timeout 5 -timeout_error \
    -max_retrans 2 -trace_msg -message_file "$E2E_TMP/$1.msg" >"$E2E_TMP/$1.out" 2>&1 </dev/null)
}
sipp_register reg1 "$EXT_PW" || {
  show "$E2E_TMP/reg1.msg" 40
  fail "601 did not register with the password given on stdin"
}
ok "601 registers (401, 200) with the password given to ext add on stdin"

HELD_INPUT=$NEW_PW
cmd=$(held_cmdline ext reset-password 601 --password-stdin)
case $cmd in *"reset-password 601"*) ;; *) fail "did not catch reset-password's command line: '$cmd'" ;; esac
case $cmd in *"$NEW_PW"*) fail "the password is in the command line: '$cmd'" ;; esac
contains "$E2E_TMP/held.out" "$NEW_PW" && fail "reset-password echoed the password"
registered=0
for ((i = 0; i < 20; i++)); do
  if sipp_register reg2 "$NEW_PW"; then
    registered=1
    break
  fi
  sleep 0.2
done
[ "$registered" = 1 ] || {
  show "$E2E_TMP/reg2.msg" 40
  fail "601 did not register with the password set by reset-password --password-stdin"
}
if sipp_register reg3 "$EXT_PW"; then fail "the old password still registers after reset-password"; fi
grep -q "SIP/2.0 401" "$E2E_TMP/reg3.msg" || fail "the old password was not refused with 401"
ok "reset-password --password-stdin: the new password registers, the old one gets 401"

# ---- 3. a trunk password from stdin answers the provider's challenge
pport=$(free_port)
printf 'SEQUENTIAL\n%s;%s\n' "$TRUNK_USER" "$TRUNK_PW" >"$E2E_TMP/creds.csv"
spawn "$E2E_TMP/registrar.out" timeout -k 2 30 sipp -sf "$E2E_DIR/scenarios/trunk_register_uas.xml" \
  -inf "$E2E_TMP/creds.csv" -i "$PROV" -p "$pport" -m 1 -nostdin -timeout 25 \
  -trace_msg -message_file "$E2E_TMP/registrar.msg"
REG_PID=$BG_PID
sleep 0.5
HELD_INPUT=$TRUNK_PW
cmd=$(held_cmdline trunk add carrier --host "$PROV" --port "$pport" --username "$TRUNK_USER" \
  --password-stdin --register --source "$PROV/32")
case $cmd in *"trunk add carrier"*) ;; *) fail "did not catch trunk add's command line: '$cmd'" ;; esac
case $cmd in *"$TRUNK_PW"*) fail "the trunk password is in the command line: '$cmd'" ;; esac
wait_exit "$REG_PID" 10 || {
  show "$E2E_TMP/registrar.msg" 40
  fail "the sipp registrar did not complete (no REGISTER answering its challenge)"
}
rc=0
wait "$REG_PID" || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/registrar.msg" 40
  fail "the sipp registrar exited $rc: Palisade's answer did not verify (the password from stdin not used?)"
}
ok "trunk add --password-stdin: the provider's verifyauth accepts the password read from stdin"

# ---- 4. a prompt without echo on a terminal
# on_tty OUT LINE1 LINE2 ARGS...: runs `palisade ARGS --data DATA` on a pty, typing LINE1 and LINE2
on_tty() {
  local out=$1 l1=$2 l2=$3
  shift 3
  (
    sleep 0.5
    printf '%s\n' "$l1"
    sleep 0.3
    printf '%s\n' "$l2"
  ) | timeout -k 2 15 script -qec "$(printf '%q ' "$PALISADE_BIN" "$@" --data "$data")" /dev/null >"$out" 2>&1
}
on_tty "$E2E_TMP/tty1.out" "$TYPED_PW" "$TYPED_PW" trunk add typed --host 198.51.100.40 --username acct ||
  fail "trunk add on a terminal failed: $(cat -v "$E2E_TMP/tty1.out")"
grep -q "Password for the provider:" "$E2E_TMP/tty1.out" || fail "no prompt: $(cat -v "$E2E_TMP/tty1.out")"
contains "$E2E_TMP/tty1.out" "$TYPED_PW" && fail "the typed password was echoed: $(cat -v "$E2E_TMP/tty1.out")"
[ "$(pal trunk show typed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')" = set ] ||
  fail "the trunk added on a terminal has no password"
if on_tty "$E2E_TMP/tty2.out" "$TYPED_PW" "Something-Else-1" trunk add typo --host 198.51.100.41 --username acct; then
  fail "two different passwords were accepted"
fi
grep -q "the two passwords differ" "$E2E_TMP/tty2.out" || fail "no clear error for a typo: $(cat -v "$E2E_TMP/tty2.out")"
pal trunk show typo >/dev/null 2>&1 && fail "trunk typo was added despite the mismatch"
ok "trunk add on a terminal: asked twice without echo; a mismatch adds nothing"

# ---- 5. the sampler saw no password in any command line
touch "$E2E_TMP/sampler.stop"
wait_exit "$SAMPLER" 5 || fail "the sampler did not stop"
samples=$(awk '/^samples/ {print $2}' "$E2E_TMP/sampler.out")
[ "${samples:-0}" -gt 100 ] || fail "the sampler took only '${samples:-0}' samples: $(cat "$E2E_TMP/sampler.out")"
if grep -q '^hit' "$E2E_TMP/sampler.out"; then
  show "$E2E_TMP/sampler.out"
  fail "a password was seen in a process's command line"
fi
ok "no password in any /proc/*/cmdline in $samples samples over the whole test"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
