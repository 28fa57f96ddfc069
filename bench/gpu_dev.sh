#!/usr/bin/env bash
# The kernel-development loop on the GPU machine, without the package build (about three minutes):
# fp4gemm_bench is linked there from objects compiled here, Hopper only, and carried:
#   cmake -S . -B build/dev -G Ninja -DFP4GEMM_CUDA=ON -DFP4GEMM_BLACKWELL=OFF && cmake --build build/dev --target fp4gemm_core
#   nvcc -std=c++17 -O3 --expt-relaxed-constexpr -DNDEBUG -DFP4GEMM_WITH_CUDA -gencode arch=compute_90a,code=sm_90a \
#     -Iinclude -Isrc -Icuda -I$CUTLASS/include -I$CUTLASS/tools/util/include -I$CUBLAS/include \
#     -c bench/gemm_bench.cu -o build/dev/gemm_bench.o       (CUTLASS: the wheel's cutlass_library/source;
#                                                            CUBLAS: the nvidia-cublas wheel's nvidia/cu13)
#   nvcc -std=c++17 -O3 -Iinclude -gencode arch=compute_90a,code=sm_90a -c bench/quantize_bench.cu -o build/dev/quantize_bench.o
#   run: bash bench/gpu_dev.sh STEP...   carry: build/dev/libfp4gemm_core.a, build/dev/gemm_bench.o,
#        build/dev/quantize_bench.o (the objects the steps link)
# (about 4 min here on 2 cores the first time, seconds after a kernel edit; on the GPU machine ~70 s a call)
# Steps: `bench` (the four training shapes), `order` (the hand-written kernel's tile order swept),
# `profile:V` (ncu of kernel V = 0 CUTLASS, 128 / 256 [x2] hand-written, one launch at
# 4096x4096x16384, with a per-SASS-line summary), `quant` (fp4gemm_quantize_bench: the rowwise quantize
# kernels' bytes against the CPU path, and their bandwidth against a copy), `qprofile:I` (ncu of
# quantize mode I), `pyprofile:TEXT` (ncu of the bench_quantize.py mode whose label contains TEXT),
# `pyquant` (the GPU quantize tests, memcheck / racecheck on them and
# bench_quantize.py, with the Python extension built here for the GPU machine's Python 3.12:
#   cmake -S . -B build/py312 -G Ninja -DFP4GEMM_CUDA=ON -DFP4GEMM_BLACKWELL=OFF \
#     -DPython_EXECUTABLE=<python3.12> -DCUTLASS_DIR=<wheel's cutlass_library/source> && cmake --build build/py312 --target _C
#   carry build/py312/_C.cpython-312-x86_64-linux-gnu.so too), `pygemm` (the GPU GEMM tests and memcheck on
# that extension; `pygemm:V` on a baseline build/py312/V/_C....so), `pymatmul` (per-kernel time of
# fp4gemm.matmul calls, that extension against each baseline build carried as build/py312/V/_C....so,
# two rounds in the same call; `pytrain` the same for bench_training.py), `opprofile` (ncu of
# fp4gemm.matmul's two quantize kernels at 8192^3: A's also writing the FP8 operand, B's plain).
# Everything ncu writes comes back as one archive, $OUT/ncu.tgz.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
lib=$(dirname "$(find / -name 'libcublasLt.so*' -not -path '/proc/*' 2>/dev/null | head -1)")
if [ -f build/dev/gemm_bench.o ]; then
  nvcc -o build/dev/fp4gemm_bench build/dev/gemm_bench.o build/dev/libfp4gemm_core.a -L"$lib" -lcublasLt \
    || { echo "link failed"; exit 1; }
fi
if [ -f build/dev/quantize_bench.o ]; then
  nvcc -o build/dev/fp4gemm_quantize_bench build/dev/quantize_bench.o build/dev/libfp4gemm_core.a \
    || { echo "link failed"; exit 1; }
fi
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
bin=build/dev/fp4gemm_bench
mkdir -p /tmp/ncu
for step in "$@"; do
  case "$step" in
    bench) timeout 240 $bin 16384x4096x4096 8192x8192x8192 16384x11008x4096 4096x4096x16384 ;;
    order) timeout 240 $bin --order ;;
    quant) timeout 400 build/dev/fp4gemm_quantize_bench ;;
    pyquant)
      cp build/py312/_C.cpython-312-x86_64-linux-gnu.so python/fp4gemm/ || exit 1
      export PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1
      timeout 360 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_quantize.py tests/test_encoder_forms.py 2>&1 \
        | tee "$OUT/pytest_quant.log" | tail -4
      [ "${PYQUANT_SANITIZE:-1}" = 0 ] || for tool in memcheck racecheck; do
        timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q -p no:cacheprovider \
          tests/test_cuda_quantize.py \
          -k "(rowblock and (normal or signed) and 257x640) or (tileblock and (normal or signed) and 192x640)" > "$OUT/sanitizer_$tool.log" 2>&1
        echo "compute-sanitizer $tool: exit $? ($(grep -c 'ERROR SUMMARY: 0' "$OUT/sanitizer_$tool.log") clean summaries)"
        tail -2 "$OUT/sanitizer_$tool.log"
      done
      [ "${PYQUANT_BENCH:-1}" = 0 ] && continue  # tests and sanitizers only
      timeout 150 python3 bench/bench_quantize.py 2>&1 | tee "$OUT/bench_quantize.md"
      echo "row+col modes, FP4GEMM_QUANTIZE_KERNEL=lanes (the tile kernel):"
      FP4GEMM_QUANTIZE_KERNEL=lanes timeout 100 python3 bench/bench_quantize.py --modes row+col 2>&1 \
        | tee "$OUT/bench_quantize_lanes.md" ;;
    qprofile:*)  # ncu of quantize mode I (quantize_bench.cu's table) at 8192x8192: qprofile:I
      i=${step#qprofile:}
      timeout 150 ncu --launch-skip 1 -c 1 -k regex:"quantize_rowblocks" --set full -f -o /tmp/ncu/q_$i \
        build/dev/fp4gemm_quantize_bench --profile "$i" 8192x8192 > /tmp/ncu/q_$i.log 2>&1
      echo "== ncu quantize $i: exit $?"
      ncu --import /tmp/ncu/q_$i.ncu-rep --page details 2>&1 | grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Issued Ipc|Warp Cycles Per Issued|Stall|No Eligible|Block Limit|Executed Ipc" | head -40
      ncu --import /tmp/ncu/q_$i.ncu-rep --csv --page raw --metrics smsp__pcsamp_warps_issue_stalled_barrier,smsp__pcsamp_warps_issue_stalled_long_scoreboard,smsp__pcsamp_warps_issue_stalled_wait,smsp__pcsamp_warps_issue_stalled_math_pipe_throttle,smsp__pcsamp_warps_issue_stalled_short_scoreboard,smsp__pcsamp_warps_issue_stalled_lg_throttle,smsp__pcsamp_warps_issue_stalled_mio_throttle,smsp__pcsamp_warps_issue_stalled_selected,smsp__pcsamp_warps_issue_stalled_not_selected,smsp__pcsamp_warps_issue_stalled_dispatch_stall,smsp__pcsamp_warps_issue_stalled_membar,smsp__pcsamp_warps_issue_stalled_sleeping,smsp__pcsamp_warps_issue_stalled_branch_resolving,smsp__pcsamp_warps_issue_stalled_no_instructions,smsp__pcsamp_warps_issue_stalled_drain,smsp__pcsamp_warps_issue_stalled_imc_miss,smsp__pcsamp_warps_issue_stalled_tex_throttle 2>&1 | tail -3 ;;
    pyprofile:*)  # ncu of one bench_quantize.py mode (the first whose label contains the text) at 8192x8192
      m=${step#pyprofile:}
      cp build/py312/_C.cpython-312-x86_64-linux-gnu.so python/fp4gemm/ || exit 1
      tag=$(echo "$m" | tr -c 'A-Za-z0-9' _)
      PYTHONPATH="$PWD/python:$PWD/bench" timeout 200 ncu --launch-skip 1 -c 1 -k regex:"quantize_(tileblocks|rowblocks|tile|rows)" \
        --set full -f -o /tmp/ncu/py_$tag python3 -c "
import sys, torch, fp4gemm, bench_quantize as b
label, fmt, kw = next(m for m in b.MODES if sys.argv[1] in m[0])
x = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
kw = dict(kw, amax=x.abs().amax().float()) if kw.get('amax') == 'given' else kw
for _ in range(3): fp4gemm.quantize(x, fmt, **kw)
torch.cuda.synchronize(); print('profiled', label)" "$m" > /tmp/ncu/py_$tag.log 2>&1
      echo "== ncu $m: exit $?"; grep profiled /tmp/ncu/py_$tag.log
      ncu --import /tmp/ncu/py_$tag.ncu-rep --csv --page details > /tmp/ncu/py_${tag}_details.csv 2>&1
      ncu --import /tmp/ncu/py_$tag.ncu-rep --csv --page source --print-source sass > /tmp/ncu/py_${tag}_sass.csv 2>&1
      grep -E '"(Executed Instructions|Issued Ipc Active|Registers Per Thread|Achieved Occupancy|Duration)"' \
        /tmp/ncu/py_${tag}_details.csv | cut -d, -f12- | head
      python3 bench/ncu_sass_summary.py /tmp/ncu/py_${tag}_details.csv /tmp/ncu/py_${tag}_sass.csv 2>&1 | head -40 ;;
    opprofile)  # ncu of the two quantize launches of fp4gemm.matmul at 8192^3 (A writing the FP8 operand too, B plain)
      cp build/py312/_C.cpython-312-x86_64-linux-gnu.so python/fp4gemm/ || exit 1
      PYTHONPATH="$PWD/python" timeout 200 ncu -c 2 -k regex:"quantize_rowblocks" --set full -f -o /tmp/ncu/op \
        python3 -c "
import torch, fp4gemm
x, w = (torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16) for _ in range(2))
fp4gemm.matmul(x, w.t(), fmt='mxfp4'); torch.cuda.synchronize(); print('profiled')" > /tmp/ncu/op.log 2>&1
      echo "== ncu opprofile: exit $?"; grep profiled /tmp/ncu/op.log
      ncu --import /tmp/ncu/op.ncu-rep --page details 2>&1 | grep -E "quantize_rowblocks|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issued Ipc|Executed Ipc|No Eligible|L2 Hit|Mem Busy|Max Bandwidth" | cut -c1-150 | head -40 ;;
    profile:*)
      v=${step#profile:}
      timeout 150 ncu --launch-skip 1 -c 1 -k regex:"device_kernel|fp8_gemm" --section SpeedOfLight \
        --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats --section InstructionStats \
        --section SourceCounters -f -o /tmp/ncu/ncu_$v $bin --profile "$v" 4096x4096x16384 > /tmp/ncu/ncu_$v.log 2>&1
      echo "== ncu $v: exit $?"
      ncu --import /tmp/ncu/ncu_$v.ncu-rep --csv --page details > /tmp/ncu/ncu_${v}_details.csv 2>&1
      ncu --import /tmp/ncu/ncu_$v.ncu-rep --csv --page source --print-source sass > /tmp/ncu/ncu_${v}_sass.csv 2>&1
      python3 bench/ncu_sass_summary.py /tmp/ncu/ncu_${v}_details.csv /tmp/ncu/ncu_${v}_sass.csv 2>&1 | head -40 ;;
    pygemm|pygemm:*)  # the GPU GEMM tests on the built extension (pygemm:V: on build/py312/V's, no
      # sanitizer, the tests of features V lacks deselected by PYGEMM_DESELECT), memcheck on the
      # special-row and ragged ones
      v=${step#pygemm}; v=${v#:}; so=build/py312/${v:+$v/}_C.cpython-312-x86_64-linux-gnu.so
      cp "$so" python/fp4gemm/_C.cpython-312-x86_64-linux-gnu.so || exit 1
      export PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1
      timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_gemm.py tests/test_qgemm.py \
        tests/test_gemm_quantized.py ${v:+-k "not (${PYGEMM_DESELECT:-nothing})"} 2>&1 \
        | tee "$OUT/pytest_gemm${v:+_$v}.log" | tail -2
      if [ -z "$v" ]; then
        FP4GEMM_TEST_SANITIZER=1 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest \
          -q -p no:cacheprovider tests/test_cuda_gemm.py -k "special or ragged" > "$OUT/sanitizer_gemm.log" 2>&1
        echo "compute-sanitizer memcheck (GEMM): exit $?"; tail -n 1 "$OUT/sanitizer_gemm.log"
      fi ;;
    pymatmul|pytrain|pymatmul:*|pytrain:*)  # pymatmul: each kernel's time in one fp4gemm.matmul call
      # (bench/profile_matmul.py); pytrain: bench_training.py's Tseng et al. and NVFP4 layers. Two
      # rounds, the built extension ("new") against each baseline carried as
      # build/py312/V/_C.cpython-312-x86_64-linux-gnu.so, or those listed: pytrain:new,base
      so=_C.cpython-312-x86_64-linux-gnu.so
      vs="new $(cd build/py312 && for d in */; do [ -f "$d$so" ] && echo "${d%/}"; done | tr '\n' ' ')"
      case "$step" in *:*) vs=$(echo "${step#*:}" | tr , ' '); step=${step%%:*} ;; esac
      for v in $vs; do
        mkdir -p /tmp/ab_$v/fp4gemm && cp -r python/fp4gemm/. /tmp/ab_$v/fp4gemm/
        src=build/py312/$so; [ $v = new ] || src=build/py312/$v/$so
        cp "$src" /tmp/ab_$v/fp4gemm/$so || exit 1
      done
      for r in 1 2; do for v in $vs; do
        echo "== $step round $r: $v"
        if [ $step = pymatmul ]; then
          PYTHONPATH=/tmp/ab_$v timeout 60 python3 bench/profile_matmul.py \
            --shapes 8192x8192x8192,16384x4096x4096,128x8192x8192 2>&1 | tee -a "$OUT/pymatmul_$v.log" | cut -c1-110
        else
          PYTHONPATH=/tmp/ab_$v:$PWD/bench timeout 100 python3 bench/bench_training.py --recipes tseng,nvfp4 2>&1 \
            | tee -a "$OUT/pytrain_$v.log" | grep "|"
        fi
      done; done ;;
    *) echo "unknown step $step" ;;
  esac
done
tar czf "$OUT/ncu.tgz" -C /tmp ncu
