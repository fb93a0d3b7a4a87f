#!/usr/bin/env bash
# The GPU checks (issue #5 item 4) as one command for a borrowed GPU machine, run from the repo root.
# Nothing to install there: its python3 has torch (CUDA), OpenCV, safetensors, tqdm, numpy and pytest.
# Writes into $OUT (the device tool's folder) or results/. Back here: copy bench_gpu.json to
# results/bench_gpu.json and run benchmarks/report.py with the README's options plus --no-run.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=src
out=${OUT:-results}
mkdir -p "$out"
{ nvidia-smi -L || echo "no nvidia-smi"; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
    2>&1 | tee "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tee "$out/test_devices.log"
python3 benchmarks/bench_gpu.py --device cuda --sizes 512x1024 1024x2048 --threads 8 \
    --out "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.log"
