#!/usr/bin/env bash
# The main job: install, build the bundled example ALBERT, compile it, emulate it, print the report.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p out
python examples/build_albert.py --preset tiny --seq-len 16 -o out/albert.onnx --inputs out/in.npz
edgebertc out/albert.onnx -o out/albert.ebin
edgebert-emu out/albert.ebin --inputs out/in.npz --outputs out/out.npz --json out/report.json
python examples/compare_onnxruntime.py out/albert.onnx out/in.npz out/out.npz
