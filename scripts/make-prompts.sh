#!/usr/bin/env bash
# Regenerates the default prompts under config/prompts/zh-CN (8 kHz mono 16-bit WAV, the
# conference bridge's format, so nothing is resampled at run time). The spoken prompts are
# synthetic (espeak-ng's Mandarin voice) placeholders: a deployment records its own with the same
# file names before going live. Requires: espeak-ng, sox (Debian packages).
set -euo pipefail
OUT=${1:-config/prompts/zh-CN}
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() {  # name text
  espeak-ng -v cmn -s 210 -w "$TMP/$1.raw.wav" "$2"
  sox -q "$TMP/$1.raw.wav" -r 8000 -c 1 -b 16 "$OUT/$1.wav" norm -3
}

say greeting "您好，这里是一二三四五热线。您的通话将被录音，请稍候。"

# Hold music: a calm, repeating pentatonic phrase (10 s), looped by the player.
notes=(523.25 587.33 659.25 783.99 880.00 783.99 659.25 587.33)
parts=()
i=0
for f in "${notes[@]}"; do
  sox -q -n -r 8000 -c 1 -b 16 "$TMP/n$i.wav" synth 1.25 sine "$f" fade q 0.05 1.25 0.4 vol 0.3
  parts+=("$TMP/n$i.wav")
  i=$((i + 1))
done
sox -q "${parts[@]}" "$OUT/hold_music.wav"
echo "prompts written to $OUT"
