#!/usr/bin/env bash
# One call on the GPU machine: build with CUDA, run every test (GPU ones included), the sanitizers on
# the GPU quantization tests, and the benchmarks. Logs go to $OUT. Usage: bash bench/gpu_session.sh [quick|fp8]
# fp8: only the hand-written FP8 kernel (cuda/kernel_sm90_fp8.cuh), Hopper-only build: its tests, memcheck,
# the C++ benchmark's training shapes (CUTLASS's kernel and it, same run), the GEMM tests with it
# selected. Profiles: bench/gpu_dev.sh profile:V. The quantize kernels alone (tests, sanitizers,
# benchmarks) without the package build: bench/gpu_dev.sh quant pyquant.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16 FP4GEMM_CUDA=ON
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -m pip install -q --no-deps --no-index .whl/nvidia_cutlass-*.whl 2>/dev/null || true
t0=$(date +%s)
defs="FP4GEMM_BENCH=ON"; [ "${1:-}" = "fp8" ] && defs="$defs;FP4GEMM_BLACKWELL=OFF"  # fp8: Hopper only
SKBUILD_CMAKE_DEFINE="$defs" python3 -m pip install -q --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s, C7510 warnings: $(grep -c C7510 "$OUT/build.log")"; grep -i "warning" "$OUT/build.log" | head -5
cd /tmp  # import the installed package, not the source tree
rm -rf /tmp/fp4tests; cp -r "$OLDPWD/tests" /tmp/fp4tests
if [ "${1:-}" = "fp8" ]; then
  timeout 120 python3 -m pytest -q -x /tmp/fp4tests/test_cuda_gemm.py -k hand_written 2>&1 | tail -5
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest -q /tmp/fp4tests/test_cuda_gemm.py \
    -k "hand_written and (77-136 or 129-8)" -p no:cacheprovider > "$OUT/sanitizer_fp8.log" 2>&1
  echo "compute-sanitizer memcheck (hand-written FP8 kernel): exit $?"; tail -2 "$OUT/sanitizer_fp8.log"
  timeout 240 "$OLDPWD"/build/cp3*/fp4gemm_bench 16384x4096x4096 8192x8192x8192 16384x11008x4096 4096x4096x16384 2>&1 | tee "$OUT/gemm_bench_fp8.md"
  FP4GEMM_SM90_FP8=256x2 FP4GEMM_SM90_TILE=large timeout 200 python3 -m pytest -q /tmp/fp4tests/test_cuda_gemm.py 2>&1 | tail -4
  exit 0
fi
timeout 120 python3 -m fp4gemm > "$OUT/report.txt" 2>&1; echo "python -m fp4gemm: exit $?"; tail -4 "$OUT/report.txt"
timeout 420 python3 -m pytest -q /tmp/fp4tests 2>&1 | tee "$OUT/pytest.log" | tail -15
if [ "${1:-}" != "quick" ]; then
  for tool in memcheck racecheck; do
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q /tmp/fp4tests/test_cuda_quantize.py \
      -k "normal and bfloat16 or shapes or misaligned or dequantize" -p no:cacheprovider > "$OUT/sanitizer_$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -c 'ERROR SUMMARY: 0' "$OUT/sanitizer_$tool.log") clean summaries)"; tail -3 "$OUT/sanitizer_$tool.log"
  done
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest -q /tmp/fp4tests/test_cuda_gemm.py \
    -k "(matches_float64 and 77-136 and random) or window or nan_block or mixed or bad" -p no:cacheprovider > "$OUT/sanitizer_gemm.log" 2>&1
  echo "compute-sanitizer memcheck (GEMM tests): exit $?"; tail -3 "$OUT/sanitizer_gemm.log"
fi
timeout 150 "$OLDPWD"/build/cp3*/fp4gemm_bench 2>&1 | tee "$OUT/gemm_bench_cpp.md"
timeout 150 python3 "$OLDPWD/bench/bench_gemm.py" 2>&1 | tee "$OUT/bench_gemm.md"
[ "${1:-}" = "quick" ] || timeout 150 python3 "$OLDPWD/bench/bench_quantize.py" 2>&1 | tee "$OUT/bench_quantize.md"
[ "${1:-}" = "quick" ] || timeout 200 "$OLDPWD"/build/cp3*/fp4gemm_quantize_bench 2>&1 | tee "$OUT/quantize_bench.md" | tail -3
timeout 240 python3 "$OLDPWD/bench/bench_training.py" 2>&1 | tee "$OUT/bench_training.md"
timeout 240 python3 -m fp4gemm gradcheck --plot "$OUT/gradcheck.png" 2>&1 | tee "$OUT/gradcheck.txt"
