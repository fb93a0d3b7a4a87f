#!/usr/bin/env bash
# The end-to-end tests whose path depends on the engine that runs our networks (marked `backends`: pipeline,
# run loop, controller, batch workers and Ray, devices, export, segment / evaluate / calibrate / mv), run once
# per backend and precision this CPU can run, pinned with DVSNET_BACKEND / DVSNET_PRECISION (docs/speed.md):
# a machine of either kind (with or without native bf16) checks the paths auto takes on the other. .ci/run
# runs it after the whole suite; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PINS=("torch fp32" "onnxruntime fp32" "onnxruntime int8")
if python -c "from dvsnet.backends import native_bf16; raise SystemExit(not native_bf16())"; then
    PINS+=("torch bf16")
fi
for pin in "${PINS[@]}"; do
    read -r backend precision <<< "$pin"
    echo "== the backend-dependent tests with DVSNET_BACKEND=$backend DVSNET_PRECISION=$precision"
    DVSNET_BACKEND=$backend DVSNET_PRECISION=$precision python -m pytest -q -m backends "$@"
done
