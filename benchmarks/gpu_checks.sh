#!/usr/bin/env bash
# The GPU checks of the issues in one pass, for a CUDA machine without napari (the workplace's device
# machine): the GPU tests and the speed benchmark alone on the GPU; with QUALITY=1 also the DSB2018
# scribble run through the CLI on CUDA, the starting model's recipe and the quality cases on the GPU; then
# (REPEAT=1, the default) a second sample of the end-to-end ratio, a trace of it, and block-wise
# prediction into zarr when dask and zarr are carried as wheels in .whl (probe.json; PROBE_PARTS chooses
# the parts).
# Every step has its own time limit
# and copies its results to $OUT as soon as it ends, so one failure or timeout loses nothing else.
#
#   OUT=/tmp/gpu NAPARI_UNET_BENCH_DATA=.benchdata bash benchmarks/gpu_checks.sh
#
# NAPARI_UNET_BENCH_DATA is a copy of the benchmark data (docs/benchmarks.md), carried to the GPU machine.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
STARTING_MINUTES=${STARTING_MINUTES:-4.5}
results=benchmarks/results
step() { echo "=== $(date +%T) $*" >>"$LOG"; }

if ls .whl/*.whl >/dev/null 2>&1; then
    # packages the GPU machine lacks (dask, zarr and theirs), carried as wheels (see benchmarks/README.md)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1
python3 -c "import torch, numpy, skimage; print(torch.__version__, numpy.__version__, skimage.__version__, torch.cuda.get_device_name())" >>"$LOG" 2>&1
blockwise_tests=""
python3 -c "import dask, zarr" 2>/dev/null && blockwise_tests="tests/blockwise/test_blocks.py"

if [ "${ONLY_SPEED:-0}" != 1 ]; then
step "GPU tests (fused kernels, device tiling, training, out of memory)"
# the files with tests marked gpu (others import napari, which the GPU machine lacks; the block-wise ones
# dask and zarr, run when carried); -rA names each test in the log
OMP_NUM_THREADS=4 timeout "${TESTS_SECONDS:-200}" python3 -m pytest -p no:cacheprovider -q -rA -m gpu \
    tests/predict/test_device_tiling.py tests/models/test_fused_inference.py tests/predict/test_tiling.py \
    tests/train/test_fit.py tests/train/test_loop.py tests/predict/test_segment.py \
    $blockwise_tests >>"$LOG" 2>&1
fi
if [ "${QUALITY:-0}" = 1 ]; then
    step "starting model, in the background: $STARTING_MINUTES minutes of training"
    OMP_NUM_THREADS=4 timeout "$(python3 -c "print(int(float($STARTING_MINUTES) * 60 + 90))")" python3 scripts/train_starting_model.py --device cuda --minutes "$STARTING_MINUTES" \
        >"$OUT/starting.log" 2>&1 &
    starting=$!
    step "DSB2018 scribbles through the CLI on CUDA"
    OMP_NUM_THREADS=4 timeout 150 python3 benchmarks/scribble_cli.py --device cuda --seeds ${SEEDS:-0 1 2} --out scribble_cli_gpu >>"$LOG" 2>&1
    cp $results/scribble_cli_gpu.json "$OUT/" 2>/dev/null
    for case in dsb_scribbles dsb_full_objects; do
        step "quality $case, standard preset, 1000 steps"
        OMP_NUM_THREADS=4 timeout 100 python3 benchmarks/quality.py --device cuda --preset standard --steps 1000 \
            --cases $case --out quality_gpu >>"$LOG" 2>&1
        cp $results/quality_gpu.json "$OUT/" 2>/dev/null
    done
    step "waiting for the starting model"
    wait $starting
    cp src/napari_unet/models/nuclei.pt "$OUT/" 2>/dev/null
    step "quality starting_model (zero-shot, fine-tuning vs scratch)"
    timeout 100 python3 benchmarks/quality.py --device cuda --cases starting_model --out quality_gpu >>"$LOG" 2>&1
    cp $results/quality_gpu.json "$OUT/" 2>/dev/null
fi

# the sections the open target needs by default (training and torch.compile of the network were measured
# on 2026-11-26 and are kept in the results file; SPEED_SECTIONS="network end_to_end training profile compiled"
# measures everything, about two minutes more)
step "speed, alone on the GPU"
timeout "${SPEED_SECONDS:-330}" python3 benchmarks/speed.py --device cuda --sections ${SPEED_SECTIONS:-network end_to_end profile} \
    >>"$LOG" 2>&1
cp $results/speed_gpu.json $results/speed_gpu.md "$OUT/" 2>/dev/null
if [ "${REPEAT:-1}" = 1 ]; then
    step "probe: the 8192 image again beside bursts of the network, traced, block-wise"
    OUT="$OUT" timeout "${REPEAT_SECONDS:-150}" python3 benchmarks/gpu_probe.py \
        --parts ${PROBE_PARTS:-repeat e2e_trace blockwise} >>"$LOG" 2>&1
fi
step "done"
