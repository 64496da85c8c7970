#!/usr/bin/env bash
# Issue 5, section 5 on a lent GPU: step time, tokens/s and peak memory of Qwen3-0.6B's architecture
# (random weights: no hub on the device machine) at the paper's M = 32 and rationale budgets, with the GPU
# recipe's memory settings, in the machine's native precision and in a T4's (fp16 + loss scaling).
#
# The device machine has torch, transformers, peft and accelerate but no bitsandbytes. Here, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2          # 41 MB
# then one `run` call per phase (each well under the 10-minute limit), carrying .whl:
#   run(command="bash scripts/gpu_session.sh native", carry=[".whl"])
#   run(command="bash scripts/gpu_session.sh t4", carry=[".whl"])
# The JSON records land in $OUT (device tool) or runs/gpu_session; copy them to data/benchmarks/ and the
# benchmarks chapter's memory table shows them (tsallis_ref.experiments.gpu_step_table).
set -uo pipefail
phase=${1:-native}
out=${OUT:-runs/gpu_session}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/nvidia_smi_$phase.csv" 2>&1 || true
$py -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__)" \
    | tee "$out/versions_$phase.txt"
common=(--model arch:qwen3-0.6b --prompt-tokens 1024 --steps 1 --micro-batch 8 --generation-batch auto)
# GPU_STEP_EXTRA is appended to every command (later flags win), e.g. a CPU smoke run of this script:
#   GPU_STEP_EXTRA="--tiny-arch --M 2 --rationale-budget 8 --prompt-tokens 16" OMP_NUM_THREADS=1 bash scripts/gpu_session.sh t4
read -r -a extra <<< "${GPU_STEP_EXTRA:-}"
case $phase in
  native)   # the paper's scale (HotpotQA's 3072 - 128), two-pass scoring, then one pass for comparison
    $py benchmarks/gpu_step.py "${common[@]}" --M 32 --rationale-budget 2944 --two-pass \
        --json "$out/gpu_step_native_two_pass.json" "${extra[@]}"
    $py benchmarks/gpu_step.py "${common[@]}" --M 32 --rationale-budget 2944 \
        --json "$out/gpu_step_native_one_pass.json" "${extra[@]}" ;;
  t4)       # a T4's arithmetic (fp16 weights compute, fp16 autocast, loss scaling) at decreasing sizes
    $py benchmarks/gpu_step.py "${common[@]}" --M 32 16 8 --rationale-budget 2944 1920 896 --two-pass \
        --dtype float16 --mixed-precision fp16 --json "$out/gpu_step_fp16_two_pass.json" "${extra[@]}" ;;
  *) echo "usage: bash scripts/gpu_session.sh native|t4" >&2; exit 2 ;;
esac
