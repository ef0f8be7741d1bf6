#!/usr/bin/env bash
# Everything the GPU path needs checked, in one run on a machine with an NVIDIA GPU,
# CuPy and PyTorch (CUDA build) installed. Writes the results to ${OUT:-gpu-results}/.
#
#   bash benchmarks/gpu_check.sh            # about 3 minutes on an H100-class GPU
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-results}"
mkdir -p "$out"
python -m pip install --quiet --no-deps -e .
python -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())"
python -m pytest -q tests/test_gpu.py 2>&1 | tee "$out/test_gpu.txt"
for batch in 100 1000; do
    python -m dlscratch.bench --device cuda --configs b --rounds 5 --batch-size "$batch" \
        --json "$out/bench-cuda-b-batch$batch.json" 2>&1 | tee "$out/bench-cuda-b-batch$batch.txt"
done
