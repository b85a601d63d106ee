#!/usr/bin/env bash
# Every estimator on the device machine in one call (bench/device_check.py):
# fit on CUDA, save and skface.load on CUDA, pickle.dumps on CUDA and unpickle
# plus skface.load in a CPU-only process, bf16-vs-float32 outputs (inside
# skface.bf16_inference() vs the float32 default), a checkpointed fit
# interrupted by SIGINT on the CPU and resumed on CUDA and the other way
# round, fits from uint8 in memory (resident on the GPU, under the sync debug
# mode) and memory-mapped (streamed) vs float32 of the same pixels,
# data_parallel() with one process (an NCCL group of one) vs the plain fit,
# and one training epoch under torch.cuda.set_sync_debug_mode("error") for
# per-batch host syncs (issue 13). About 3 minutes of work on an H100; past
# 270 s (--budget) the checks not started are listed as skipped.
# One JSON line per check on stdout, also in $OUT/device_check.jsonl; the exit
# status is non-zero when any check failed (all checks run regardless).
#
# The device machine has torch, scikit-learn, pandas and pillow but neither
# skorch (nor its tabulate and tqdm), safetensors nor scikit-image. Prepare
# here (both folders are git-ignored; bench/README.md says more):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       skorch==1.4.0 tabulate==0.10.0 tqdm==4.70.1 safetensors==0.8.0 platformdirs==4.14.9
#   mkdir -p .gpu_data && python -c "import numpy, skimage.data as d; \
#       numpy.save('.gpu_data/lfw_subset.npy', d.lfw_subset())"
#
# then run, with carry [".whl", ".gpu_data"] and timeout_s 330:
#
#   bash bench/device_check.sh
#
# Here, without a GPU: `bash bench/device_check.sh --dry-run` runs the same
# checks on the CPU with tiny settings in under a minute (tests/test_device_check.py).
# Extra arguments go to bench/device_check.py (--estimators, --epochs, --checks,
# --budget).
set -uo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Carried wheels only where skorch is missing (the device machine): here they are
# built for another Python and would shadow the installed packages.
if [ -d .whl ] && ! "$python" -c "import skorch" >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
args=("$@")
if [ -n "${OUT:-}" ]; then
    args+=(--jsonl "$OUT/device_check.jsonl")
fi
case " $* " in
    *" --dry-run "*) ;;
    *) nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true ;;
esac
exec "$python" bench/device_check.py "${args[@]}"
