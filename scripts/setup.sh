#!/usr/bin/env bash
# Installs brainlike and everything its default test run needs (CPU torch; no CUDA build, no torchaudio).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,zoo,hf,ray,downstream,reference]"
# Official implementations used only as test references (installed without their dependencies, which would pull
# torchaudio or another torch).
python -m pip install -q --no-deps dasheng==0.0.9 torchvggish==0.2 encodec==0.1.1 resampy==0.4.3
# The rendered downstream task sets (nsynth-pitch, nsynth-instrument, music-style) need fluidsynth and a General MIDI
# soundfont (apt-get install fluidsynth musescore-general-soundfont-small); built when both are present, else skipped.
if command -v fluidsynth >/dev/null && compgen -G "/usr/share/sounds/sf[23]/*.sf[23]" >/dev/null; then
    brainlike tasks build
else
    echo "setup: fluidsynth or a GM soundfont is missing; rendered task sets not built (see README, Downstream)"
fi
