#!/usr/bin/env bash
# The tests of every part that `--backend auto` can hand to another engine, run once per backend and precision
# this CPU can run, pinned with DVSNET_BACKEND / DVSNET_PRECISION (docs/speed.md): a machine of either kind
# (with or without native bf16) checks the paths auto takes on the other. .ci/run runs it after the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=(tests/test_pipeline.py tests/test_devices.py tests/test_batch.py tests/test_run.py tests/test_control.py
       tests/models/test_export.py tests/cli/test_batch.py tests/cli/test_segment.py tests/cli/test_evaluate.py
       tests/cli/test_calibrate.py tests/cli/test_export.py tests/cli/test_flow_mv.py)
PINS=("torch fp32" "onnxruntime fp32" "onnxruntime int8")
if python -c "from dvsnet.backends import native_bf16; raise SystemExit(not native_bf16())"; then
    PINS+=("torch bf16")
fi
for pin in "${PINS[@]}"; do
    read -r backend precision <<< "$pin"
    echo "== the backend-dependent tests with DVSNET_BACKEND=$backend DVSNET_PRECISION=$precision"
    DVSNET_BACKEND=$backend DVSNET_PRECISION=$precision python -m pytest -q -p no:randomly "${TESTS[@]}" "$@"
done
