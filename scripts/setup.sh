#!/usr/bin/env bash
# Installs brainlike and everything its default test run needs (CPU torch; no CUDA build, no torchaudio).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,zoo,hf]"
