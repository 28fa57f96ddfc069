#!/usr/bin/env bash
# One GPU-machine call of GPT runs (docs/training.md): fp4gemm from a carried python/fp4gemm/_C*.so
# (built elsewhere for this Python; no build on the machine) or else a source build (the CUTLASS
# wheel carried in .whl/, ~140 s), then train the given recipes concurrently on the one GPU (a step is
# host-bound, so four share it well), each cut at LIMIT seconds, and pack the results into $OUT.
#   bash bench/gpu_train.sh tseng-plain tseng-rht tseng-sr tseng-rht-sr      (LIMIT=480 STEPS=2000)
set -uo pipefail
export PYTHONUNBUFFERED=1
LIMIT=${LIMIT:-480}
STEPS=${STEPS:-2000}
OUTD=/tmp/gpt
if compgen -G "python/fp4gemm/_C*.so" > /dev/null; then
  export PYTHONPATH=$PWD/python
else
  python3 -m pip install -q --no-deps --no-index .whl/nvidia_cutlass-*.whl
  CMAKE_BUILD_PARALLEL_LEVEL=16 FP4GEMM_CUDA=ON python3 -m pip install -q --no-build-isolation --no-deps . \
    > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
mkdir -p "$OUTD"
for r in "$@"; do
  timeout "$LIMIT" python3 examples/train_gpt.py train --recipes "$r" --steps "$STEPS" --out "$OUTD" \
    > "$OUTD/$r.log" 2>&1 &
done
wait
tail -n 1 "$OUTD"/*.log
tar czf "$OUT/gpt.tgz" -C /tmp gpt
