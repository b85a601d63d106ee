#!/usr/bin/env bash
# The SDAE table (bench/sdae.py) on the device machine, which has torch,
# scikit-learn and pillow but neither the shared data nor skorch. Prepare
# here first (both folders are git-ignored; pass them in `carry`):
#
#   python bench/pack_utkface.py --size 64 --out .gpu_data/utkface.npz   # ~48 MB
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl skorch==1.4.0
#
# then run, with carry [".gpu_data", ".whl"]:
#
#   bash bench/device_sdae.sh                                   # the full table, all rows
#   bash bench/device_sdae.sh --rows finetuned --folds 0,1      # a part, to fit a call
#
# Extra arguments go to bench/sdae.py. JSON rows land in $OUT/sdae.json, the
# log in $OUT/sdae.log, fold 0's age predictions in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:?OUT must name the folder that comes back}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 bench/sdae.py --data-home .gpu_data/utkface.npz --out-dir "$out" "$@" \
    > >(tee "$out/sdae.json") 2> >(tee "$out/sdae.log" >&2)
