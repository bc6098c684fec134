#!/usr/bin/env bash
# benchmarks/gpu.sh: the one GPU call for linear cross-entropy. Installs nothing.
#
#   1. prints versions (GPU, driver, torch, triton, peers);
#   2. runs the cce-triton correctness tests natively (TRITON_INTERPRET=0, bf16 included);
#   3. runs benchmarks/gpu_check.py at the Gemma-2-2B (8192 x 2304, V 256000) and Llama-3-8B
#      (8192 x 4096, V 128256) shapes in bf16 for cce-triton (exact, filtered, lean), cce-torch,
#      torch-native, naive, apple-cce and liger where importable: forward+backward median time
#      (CUDA events), peak memory (max_memory_allocated), errors against an fp32 reference.
#
# Everything finishes within about 8 minutes. Full results go to $OUT (if set, else to a
# temporary folder): triton-tests.log, gpu_check.json, gpu_check.log. The short table comes last.
# Peers travel as wheels unpacked by the caller onto PYTHONPATH (see docs/benchmarks.md).
#
# Usage: benchmarks/gpu.sh [--dry-run]
#   --dry-run  the same steps on the CPU in the Triton interpreter, a few tests, tiny shapes.
# Exit status: 0 when the tests pass and every result agrees with the reference, 1 otherwise.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT" || exit 1

DRY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument '$arg' (expected --dry-run)" >&2; exit 2 ;;
    esac
done

PY="${PYTHON:-python3}"
TOTAL_S=470                                   # the whole script, a little under 8 minutes
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
RESULTS="${OUT:-$(mktemp -d /tmp/xent-gpu.XXXXXX)}"
mkdir -p "$RESULTS"
export PYTHONPATH="$ROOT:$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1

echo "== versions"
if [ "$DRY" = 0 ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
    export TRITON_INTERPRET=0
else
    export TRITON_INTERPRET=1
fi
"$PY" - <<'EOF'
import importlib.metadata as md, platform, torch
try:
    import triton; tv = triton.__version__
except ImportError:
    tv = "not installed"
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"python {platform.python_version()} | torch {torch.__version__} (CUDA {torch.version.cuda}) | triton {tv} | GPU {gpu}")
for pkg in ("cut-cross-entropy", "liger-kernel", "pytest-xdist"):
    try:
        print(f"{pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        print(f"{pkg} not installed")
EOF

echo "== cce-triton correctness tests (TRITON_INTERPRET=$TRITON_INTERPRET)"
TEST_LOG="$RESULTS/triton-tests.log"
TESTS=(tests/plugins/cce/test_triton_kernel.py tests/plugins/cce/test_triton_inputs.py)
PYTEST=("$PY" -m pytest -q -rs -p no:cacheprovider)
if [ "$DRY" = 1 ]; then
    timeout 300 "${PYTEST[@]}" "${TESTS[@]}" -k "plain or all_tokens or bad_input or splits" 2>&1 | tee "$TEST_LOG"
    TEST_RC=${PIPESTATUS[0]}
else
    # one fixed configuration per program: many small specialisations compile fast, no autotuning
    export XENT_TRITON_AUTOTUNE=0
    PAR=()
    if "$PY" -c "import xdist" 2>/dev/null; then PAR=(-n 4); fi
    timeout 200 "${PYTEST[@]}" "${PAR[@]}" "${TESTS[@]}" 2>&1 | tee "$TEST_LOG"
    TEST_RC=${PIPESTATUS[0]}
    # the large int64-offset problems one at a time (each needs ~24 GiB)
    timeout 100 "${PYTEST[@]}" tests/plugins/cce/test_triton_gpu.py 2>&1 | tee -a "$TEST_LOG"
    GPU_RC=${PIPESTATUS[0]}
    [ "$TEST_RC" = 0 ] && TEST_RC=$GPU_RC
    unset XENT_TRITON_AUTOTUNE
fi
if [ "$TEST_RC" = 0 ]; then TESTS_STATUS="passed"; else TESTS_STATUS="FAILED(rc=$TEST_RC)"; fi
echo "tests: $TESTS_STATUS after $(elapsed) s"

if [ "$DRY" = 0 ]; then
    # vocab-parallel path on NCCL: one GPU allows world size 1 only (a sanity run, per-rank memory)
    echo "== vocab-parallel on NCCL, world size 1"
    timeout 60 "$PY" benchmarks/distributed_memory.py --backend nccl --worlds 1 2>&1 \
        | tee "$RESULTS/distributed_nccl.log" | tail -n 5
fi

echo "== benchmark (results in $RESULTS; started after $(elapsed) s)"
LEFT=$(( TOTAL_S - $(elapsed) ))
[ "$LEFT" -lt 60 ] && LEFT=60
BUDGET=$(( LEFT - 60 ))                       # stop starting runs while a minute is left
BENCH=("$PY" benchmarks/gpu_check.py --out "$RESULTS/gpu_check.json" --tests "$TESTS_STATUS"
       --budget-s "$BUDGET")
if [ "$DRY" = 1 ]; then BENCH+=(--dry-run --reps 2 --warmup 1 --impls cce-triton,cce-triton-filtered,naive); fi
timeout "$LEFT" "${BENCH[@]}" 2>&1 | tee "$RESULTS/gpu_check.log"
BENCH_RC=${PIPESTATUS[0]}
[ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
