#!/usr/bin/env bash
# Palisade's relay and rtpengine's in the same run, alternating passes (the machine is shared: alternating
# spreads the noise over both): per pass, rtpengine at 100 then 200 calls (plain and SDES-SRTP on one leg; the
# reference driver ../shared/peers/rtpengine, userspace forwarding), then Palisade at 100 and 200 calls
# (benches/relay/run.sh). Same pacing for both: G.711 172-byte packets, 50 per second per direction per call.
#
# usage: benches/relay/beside-rtpengine.sh [PASSES] [DURATION_S]     (root; about 4 minutes per pass)
# Environment: PALISADE_BIN (a release binary; built otherwise), SHARED_DIR (default: the repository's ../shared).
# Results: benches/relay/results/relay-*.txt (Palisade) and results/rtpengine/rtpengine-ladder-*.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_DIR=${SHARED_DIR:-$HERE/../../../shared}
PASSES=${1:-2} DURATION=${2:-10}
[[ $PASSES =~ ^[1-4]$ ]] || { echo "PASSES: 1..4" >&2; exit 2; }
if ! [[ $DURATION =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 2 ] || [ "$DURATION" -gt 30 ]; then
  echo "DURATION: 2..30 s" >&2
  exit 2
fi
RTPE=$SHARED_DIR/peers/rtpengine/run.sh
[ -x "$RTPE" ] || { echo "no rtpengine driver at $RTPE (set SHARED_DIR)" >&2; exit 1; }
mkdir -p "$HERE/results/rtpengine"
rtpengine_case() { # calls pps
  # CASES=" ": no ladder cases (an empty value would mean the default ladder), only the phone-paced ones.
  RTP_NETNS=palrtpe$$ RESULTS_DIR=$HERE/results/rtpengine CASES=" " REAL_CASES="$1:plain $1:srtp" \
    REAL_RATES=$2 REPEAT=1 DURATION=$DURATION timeout 300 "$RTPE"
}
for pass in $(seq "$PASSES"); do
  echo "=== pass $pass: rtpengine" >&2
  rtpengine_case 100 10000
  rtpengine_case 200 20000
  echo "=== pass $pass: Palisade" >&2
  "$HERE/run.sh" -n 100,200 -R 1 -d "$DURATION"
done
