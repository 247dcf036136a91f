#!/usr/bin/env bash
# Every GPU-only figure of docs/performance.md in one run (budget: under 8 minutes on one GPU).
#
#   1. benchmarks/sdxl_memory.py, preset t4            (target: peak <= 12 GiB at 1024 px)
#   2. benchmarks/sdxl_memory.py, t4 + base_weights=float8 (target: peak <= 8 GiB at 1024 px)
#   3. benchmarks/real_size.py --device cuda --quick   (512 px; training >= 1.0 uncached and
#                                                        >= 1.3 cached vs diffusers' loop; generation <= 1.05)
#   4. the gpu-marked tests
#
# Usage, from the repository root, with torch (CUDA), diffusers, transformers, peft, pydantic and
# bitsandbytes importable by PYTHON (synthaug and the plugins are put on PYTHONPATH from src/):
#
#   bash benchmarks/gpu_suite.sh                 # results in benchmarks/results/gpu-suite/
#   OUT=/some/dir PYTHON=.venv/bin/python bash benchmarks/gpu_suite.sh
#   WHEELS=wheels/ bash benchmarks/gpu_suite.sh  # first pip-installs the wheels in wheels/ offline
#                                                # (a machine without network: e.g. diffusers,
#                                                # pydantic, pydantic-core, bitsandbytes)
#
# Each step has its own time limit (seconds, below) and writes <step>.log (and .json); a step
# that fails or times out does not stop the others. The random-weight models are built once
# under benchmarks/results/models (SDXL float16 ~7 GB, SD1.5 float32 ~4 GB of disk).
# At most 8 files come back in RESULTS (gpu.txt, 4 logs, 3 JSON). Copy the figures into
# docs/performance.md with the GPU name from gpu.txt.
set -u
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
RESULTS="${OUT:-benchmarks/results}/gpu-suite"
MODELS="benchmarks/results/models"
mkdir -p "$RESULTS" "$MODELS"
export HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="src:$(printf '%s:' plugins/*/src)${PYTHONPATH:-}"

if [ -n "${WHEELS:-}" ]; then
  "$PYTHON" -m pip install --no-index --no-deps --quiet "$WHEELS"/*.whl || echo "installing $WHEELS failed"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} > "$RESULTS/gpu.txt" 2>&1
cat "$RESULTS/gpu.txt"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local started=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
  local rc=$?
  echo "rc=$rc seconds=$((SECONDS - started))" >> "$RESULTS/$name.log"
  grep -v -i -e warning -e warn\( "$RESULTS/$name.log" | tail -n 30
}

step sdxl-t4 150 "$PYTHON" benchmarks/sdxl_memory.py --steps 3 --model-cache "$MODELS" \
  --json "$RESULTS/sdxl-t4.json"
step sdxl-t4-float8 90 "$PYTHON" benchmarks/sdxl_memory.py --steps 3 --base-weights float8 \
  --model-cache "$MODELS" --json "$RESULTS/sdxl-t4-float8.json"
step real-size-cuda 170 "$PYTHON" benchmarks/real_size.py --device cuda --quick --cache "$MODELS" \
  --json "$RESULTS/real-size-cuda.json"
step gpu-tests 60 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests plugins/synthaug-lora-sdxl/tests \
  plugins/synthaug-ddpm/tests
echo "results: $RESULTS"
