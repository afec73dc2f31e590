#!/usr/bin/env bash
# Regenerate the spoken prompts in crates/media/prompts/ (8 kHz 16-bit mono PCM WAV, one file per prompt id).
#
#   scripts/make-prompts.sh          # needs espeak-ng and sox (apt-get install -y espeak-ng sox)
#
# The WAV files are committed and compiled into the media crate with include_bytes!, so neither tool is needed
# to build or test; run this only after changing a text below, then commit the files it rewrote.
#
# Every file is trimmed to the first sound and ends with exactly 150 ms of silence, so prompts played back to
# back ("You have" + "three" + "new messages.") keep an even rhythm. Output is reproducible (sox -R, no dither)
# and plain RIFF/fmt/data, which the script checks, so wav::decode never meets a chunk it must skip.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/crates/media/prompts"

for tool in espeak-ng sox; do
    if ! command -v "$tool" > /dev/null 2>&1; then
        echo "make-prompts.sh: $tool not found (apt-get install -y espeak-ng sox)" >&2
        exit 1
    fi
done

# id|text; the id is the file name and matches media::prompts::Prompt::id.
prompts=(
    "vm-greeting-default|The person you are calling is not available. Please leave a message after the tone. Press the pound key when you are done."
    "vm-enter-pin|Please enter your voicemail PIN, then press the pound key."
    "vm-pin-wrong|That PIN is not correct."
    "vm-too-many|Too many wrong PINs."
    "vm-goodbye|Goodbye."
    "vm-you-have|You have"
    "vm-new-messages|new messages."
    "vm-old-messages|saved messages."
    "vm-message|Message"
    "vm-menu|Press 1 to repeat, 6 for the next message, 7 to delete it, 9 to record your greeting, or star to hang up."
    "vm-deleted|Message deleted."
    "vm-no-more|There are no more messages. Press 9 to record your greeting, or star to hang up."
    "vm-record-greeting|Record your greeting after the tone, then press the pound key."
    "vm-greeting-saved|Your greeting is saved."
    "vm-message-saved|Your message is saved. Goodbye."
    "vm-mailbox-full|The mailbox is full. Please try again later."
    "vm-mailbox-locked|This mailbox is locked. Try again later."
    "unlock-enter-pin|To unlock external calls, enter your voicemail PIN, then press the pound key."
    "unlock-done|External calls are unlocked."
    "conf-enter-pin|Please enter the conference PIN, then press the pound key."
    "conf-locked|This conference is locked. Try again later."
    "conf-full|This conference is full. Please try again later."
    "att-invalid|That is not a valid choice."
    "rec-notice|This call is recorded."
    "digit-0|zero"
    "digit-1|one"
    "digit-2|two"
    "digit-3|three"
    "digit-4|four"
    "digit-5|five"
    "digit-6|six"
    "digit-7|seven"
    "digit-8|eight"
    "digit-9|nine"
)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

for entry in "${prompts[@]}"; do
    id="${entry%%|*}"
    text="${entry#*|}"
    espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" -- "$text"
    # rate first, so that norm -3 sets the peak of the 8 kHz samples that are written. silence 1 ...: drop all
    # before the first sound; reverse/silence/reverse: the same at the end, so that pad adds exactly 150 ms.
    sox -R -D "$tmp/raw.wav" --comment "" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/out.wav" \
        rate 8000 silence 1 0.01 -45d reverse silence 1 0.01 -45d reverse norm -3 pad 0 0.15
    # A plain 44-byte header: "fmt " at 12 (16 bytes: PCM, 1 channel, 8000 Hz, 16000 B/s, align 2, 16 bit), then
    # "data" at 36.
    header="$(od -An -tx1 -j12 -N28 "$tmp/out.wav" | tr -d ' \n')"
    if [[ "$header" != "666d74201000000001000100401f0000803e00000200100064617461" ]]; then
        echo "make-prompts.sh: $id: not a plain RIFF/fmt/data 8 kHz 16-bit mono file ($header)" >&2
        exit 1
    fi
    mv "$tmp/out.wav" "$out/$id.wav"
done

du -sh "$out"
