// C++ microbenchmark of the rowwise quantize kernels (issue 3): each mode's kernel time against a
// device-to-device copy of the same bytes (input read + outputs written) in the same run, for the
// block-per-thread kernel (quantize_rowblocks.cu) and the lane kernel (FP4GEMM_QUANTIZE_KERNEL=lanes),
// and a byte check: both kernels' bytes equal on every timed shape, and equal to the CPU path's on
// special inputs (zeros, -0, NaN / Inf, subnormals, huge values, ties) and a random tensor.
//   fp4gemm_quantize_bench [RxC ...]       (default 16384x4096 8192x8192 65536x4096)
//   fp4gemm_quantize_bench --profile I RxC  (for ncu: mode I of the table alone, 3 calls, block kernel)
// Build: cmake -DFP4GEMM_BENCH=ON, or by hand from libfp4gemm_core.a (bench/gpu_dev.sh).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fp4gemm/fp4gemm.h"

using namespace fp4gemm;

namespace {

#define CK(expr)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (expr);                                                              \
    if (e_ != cudaSuccess) { std::printf("CUDA error %s at %s\n", cudaGetErrorString(e_), #expr); std::exit(1); } \
  } while (0)

struct Mode {
  const char* label;
  QuantizeConfig cfg;
  bool amax_given = false;
};

std::vector<Mode> modes() {
  auto mk = [](const char* label, Format fmt, ScaleRule rule, Rounding rd, int g, bool prescale = false, bool amax = false) {
    Mode m{label, QuantizeConfig{}, amax};
    m.cfg.fmt = fmt;
    m.cfg.scale_rule = rule;
    m.cfg.rounding = rd;
    m.cfg.hadamard = g;
    m.cfg.prescale = prescale;
    m.cfg.seed = 1234;
    m.cfg.offset = 77;
    if (g) hadamard_signs_from_seed(1, m.cfg.hadamard_signs);
    return m;
  };
  using F = Format;
  using S = ScaleRule;
  using Rd = Rounding;
  return {
      mk("mxfp4 floor RTN", F::MXFP4, S::Floor, Rd::RTN, 0),
      mk("mxfp4 floor RTN RHT16", F::MXFP4, S::Floor, Rd::RTN, 16),
      mk("mxfp4 floor RTN RHT32", F::MXFP4, S::Floor, Rd::RTN, 32),
      mk("mxfp4 floor RTN RHT64", F::MXFP4, S::Floor, Rd::RTN, 64),
      mk("mxfp4 floor RTN RHT128", F::MXFP4, S::Floor, Rd::RTN, 128),
      mk("mxfp4 rceil RTN RHT64", F::MXFP4, S::RCeil, Rd::RTN, 64),
      mk("mxfp4 even RTN RHT128", F::MXFP4, S::Even, Rd::RTN, 128),
      mk("mxfp4 floor SR 3/4 RHT64", F::MXFP4, S::Floor, Rd::SR, 64, true),
      mk("mxfp4 floor SR RHT128", F::MXFP4, S::Floor, Rd::SR, 128),
      mk("nvfp4 TE RTN, amax given", F::NVFP4, S::TE, Rd::RTN, 0, false, true),
      mk("nvfp4 TE RTN RHT16, amax given", F::NVFP4, S::TE, Rd::RTN, 16, false, true),
      mk("nvfp4 torchao SR, amax given", F::NVFP4, S::Torchao, Rd::SR, 0, false, true),
      mk("nvfp4 TE RTN (amax pass)", F::NVFP4, S::TE, Rd::RTN, 0),
  };
}

cudaStream_t g_stream = nullptr;  // the calls' stream (captured into a graph for timing)

struct Out {
  uint8_t *data = nullptr, *scale = nullptr;
  float* amax = nullptr;
  int64_t data_bytes = 0, scale_bytes = 0;
};

Out alloc_out(int64_t R, int64_t C, Format fmt, bool device) {
  Out o;
  o.data_bytes = R * C / 2;
  o.scale_bytes = R * C / block_size(fmt);
  if (device) {
    CK(cudaMalloc(&o.data, o.data_bytes));
    CK(cudaMalloc(&o.scale, o.scale_bytes));
    CK(cudaMalloc(&o.amax, 4));
  } else {
    o.data = static_cast<uint8_t*>(std::malloc(o.data_bytes));
    o.scale = static_cast<uint8_t*>(std::malloc(o.scale_bytes));
    o.amax = static_cast<float*>(std::malloc(4));
  }
  return o;
}
void free_out(Out& o, bool device) {
  if (device) { cudaFree(o.data); cudaFree(o.scale); cudaFree(o.amax); }
  else { std::free(o.data); std::free(o.scale); std::free(o.amax); }
}

void run(const Mode& m, const void* x, int64_t R, int64_t C, const Out& o, const float* amax_in, bool device) {
  QuantizeConfig cfg = m.cfg;
  cfg.amax_in = m.amax_given ? amax_in : nullptr;
  QuantizedOut qo;
  qo.data = o.data;
  qo.scale = o.scale;
  qo.amax = o.amax;
  quantize(x, DType::BF16, R, C, C, &cfg, &qo, nullptr, nullptr, device, g_stream);
}

// Median ms per call of fn, from CUDA-graph replays of kCalls calls (so host time per call does not
// count, as in bench_quantize.py).
double median_ms(const std::function<void()>& fn) {
  constexpr int kWarmup = 3, kCalls = 20, kReps = 7;
  for (int i = 0; i < kWarmup; ++i) fn();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kCalls; ++i) fn();
  CK(cudaStreamEndCapture(g_stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> t;
  CK(cudaGraphLaunch(exec, g_stream));
  for (int r = 0; r < kReps; ++r) {
    cudaEventRecord(a, g_stream);
    CK(cudaGraphLaunch(exec, g_stream));
    cudaEventRecord(b, g_stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms / kCalls);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

uint16_t bf16(float f) {  // round to nearest even (inputs are finite here)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Random normal rows with a few outliers; `special`: rows of zeros, -0, NaN, Inf, subnormals, huge
// values, E2M1 ties, and sparse rows (a g-block with one nonzero value).
std::vector<uint16_t> make_input(int64_t R, int64_t C, bool special, uint64_t seed) {
  std::vector<uint16_t> h(size_t(R * C));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (auto& v : h) v = bf16(n(rng));
  for (int64_t i = 0; i < R * C; i += 997) h[size_t(i)] = bf16(n(rng) * 300.0f);
  if (!special) return h;
  for (int64_t r = 0; r < R; ++r) {
    uint16_t* row = h.data() + r * C;
    switch (r % 16) {
      case 0: std::fill(row, row + C, uint16_t(0)); break;
      case 1: std::fill(row, row + C, uint16_t(0x8000)); break;
      case 2: for (int64_t c = 0; c < C; ++c) row[c] = uint16_t(c % 3 ? 0x0000 : 0x8000); break;
      case 3: row[r % C] = 0x7FC0; break;                         // NaN in one block
      case 4: row[(r * 7) % C] = 0xFF80; break;                   // -Inf
      case 5: for (int64_t c = 0; c < C; ++c) row[c] = uint16_t(1 + c % 127) | (c & 1 ? 0x8000 : 0); break;  // subnormals
      case 6: for (int64_t c = 0; c < C; ++c) row[c] = bf16((c & 1 ? -3e38f : 3e38f) / float(1 + c % 5)); break;  // huge
      case 7: for (int64_t c = 0; c < C; ++c) row[c] = bf16(0.25f * float(c % 25) * (c & 2 ? -1.0f : 1.0f)); break;  // ties
      case 8: std::fill(row, row + C, uint16_t(0)); row[(r * 13) % C] = bf16(1.5f); break;  // one value
      case 9: for (int64_t c = 0; c < C; ++c) row[c] = bf16(c % 2 ? 1.0f : -1.0f); break;     // cancellations
      default: break;
    }
  }
  return h;
}

bool same(const Out& a, const Out& b, bool a_dev, bool b_dev, const char* what) {
  std::vector<uint8_t> ad(a.data_bytes), bd(b.data_bytes), as(a.scale_bytes), bs(b.scale_bytes);
  CK(cudaMemcpy(ad.data(), a.data, a.data_bytes, a_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost));
  CK(cudaMemcpy(bd.data(), b.data, b.data_bytes, b_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost));
  CK(cudaMemcpy(as.data(), a.scale, a.scale_bytes, a_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost));
  CK(cudaMemcpy(bs.data(), b.scale, b.scale_bytes, b_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost));
  int64_t bad_d = 0, bad_s = 0, first = -1;
  for (size_t i = 0; i < ad.size(); ++i)
    if (ad[i] != bd[i]) { if (first < 0) first = int64_t(i); ++bad_d; }
  for (size_t i = 0; i < as.size(); ++i) bad_s += as[i] != bs[i];
  if (bad_d || bad_s)
    std::printf("  MISMATCH %s: %lld code bytes (first at %lld), %lld scale bytes\n", what, (long long)bad_d,
                (long long)first, (long long)bad_s);
  return !bad_d && !bad_s;
}

void set_kernel(bool lanes) {
  if (lanes) setenv("FP4GEMM_QUANTIZE_KERNEL", "lanes", 1);
  else unsetenv("FP4GEMM_QUANTIZE_KERNEL");
}

}  // namespace

int main(int argc, char** argv) {
  CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  if (argc == 4 && std::strcmp(argv[1], "--profile") == 0) {
    const Mode m = modes().at(size_t(std::atoi(argv[2])));
    long long R = 0, C = 0;
    std::sscanf(argv[3], "%lldx%lld", &R, &C);
    const auto h = make_input(R, C, false, 1);
    void* x = nullptr;
    float amax_h = 1500.0f, *amax_d = nullptr;
    CK(cudaMalloc(&x, h.size() * 2));
    CK(cudaMalloc(&amax_d, 4));
    CK(cudaMemcpy(x, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(amax_d, &amax_h, 4, cudaMemcpyHostToDevice));
    Out o = alloc_out(R, C, m.cfg.fmt, true);
    for (int i = 0; i < 3; ++i) run(m, x, R, C, o, amax_d, true);
    CK(cudaDeviceSynchronize());
    std::printf("profiled %s at %lldx%lld\n", m.label, R, C);
    return 0;
  }
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int i = 1; i < argc; ++i) {
    long long r = 0, c = 0;
    if (std::sscanf(argv[i], "%lldx%lld", &r, &c) == 2) shapes.push_back({r, c});
  }
  if (shapes.empty()) shapes = {{16384, 4096}, {8192, 8192}, {65536, 4096}};
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);

  // 1. Bytes: GPU (both kernels) == CPU on special and random inputs of a few shapes.
  int failures = 0, checks = 0;
  for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{{64, 4096}, {37, 1024}, {130, 256}, {3, 8192}}) {
    const int64_t R = shape.first, C = shape.second;
    for (bool special : {true, false}) {
      const auto h = make_input(R, C, special, uint64_t(R * 31 + C));
      void* x = nullptr;
      CK(cudaMalloc(&x, h.size() * 2));
      CK(cudaMemcpy(x, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
      float amax_h = 3.5f, *amax_d = nullptr;
      CK(cudaMalloc(&amax_d, 4));
      CK(cudaMemcpy(amax_d, &amax_h, 4, cudaMemcpyHostToDevice));
      for (const Mode& m : modes()) {
        Out cpu = alloc_out(R, C, m.cfg.fmt, false), gpu = alloc_out(R, C, m.cfg.fmt, true),
            lanes = alloc_out(R, C, m.cfg.fmt, true);
        run(m, h.data(), R, C, cpu, &amax_h, false);
        set_kernel(false);
        run(m, x, R, C, gpu, amax_d, true);
        set_kernel(true);
        run(m, x, R, C, lanes, amax_d, true);
        set_kernel(false);
        CK(cudaDeviceSynchronize());
        const std::string what = std::string(m.label) + " " + std::to_string(R) + "x" + std::to_string(C) +
                                 (special ? " special" : " random");
        checks += 2;
        failures += !same(gpu, cpu, true, false, (what + ": rowblocks vs CPU").c_str());
        failures += !same(lanes, cpu, true, false, (what + ": lanes vs CPU").c_str());
        free_out(cpu, false);
        free_out(gpu, true);
        free_out(lanes, true);
      }
      cudaFree(x);
      cudaFree(amax_d);
    }
  }
  std::printf("byte checks against the CPU path: %d of %d equal\n", checks - failures, checks);

  // 2. Speed, and both kernels' bytes on the timed shapes.
  std::printf("| shape | mode | rowblocks ms | ratio to copy | lanes ms | ratio to copy | speedup | bytes equal |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (const auto& shape : shapes) {
    const int64_t R = shape.first, C = shape.second;
    void* xs[2];
    for (int i = 0; i < 2; ++i) {
      const auto h = make_input(R, C, false, uint64_t(i + 1));
      CK(cudaMalloc(&xs[i], h.size() * 2));
      CK(cudaMemcpy(xs[i], h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    }
    float amax_h = 1500.0f, *amax_d = nullptr;
    CK(cudaMalloc(&amax_d, 4));
    CK(cudaMemcpy(amax_d, &amax_h, 4, cudaMemcpyHostToDevice));
    for (const Mode& m : modes()) {
      Out a = alloc_out(R, C, m.cfg.fmt, true), b = alloc_out(R, C, m.cfg.fmt, true);
      const int64_t bytes = R * C * 2 + a.data_bytes + a.scale_bytes;
      void *src = nullptr, *dst = nullptr;
      CK(cudaMalloc(&src, bytes / 2));
      CK(cudaMalloc(&dst, bytes / 2));
      const double copy = median_ms([&] { cudaMemcpyAsync(dst, src, bytes / 2, cudaMemcpyDeviceToDevice, g_stream); });
      int i = 0;
      set_kernel(false);
      const double t_new = median_ms([&] { run(m, xs[i ^= 1], R, C, a, amax_d, true); });
      set_kernel(true);
      const double t_old = median_ms([&] { run(m, xs[i ^= 1], R, C, b, amax_d, true); });
      set_kernel(false);
      run(m, xs[0], R, C, a, amax_d, true);
      set_kernel(true);
      run(m, xs[0], R, C, b, amax_d, true);
      set_kernel(false);
      CK(cudaDeviceSynchronize());
      const bool eq = same(a, b, true, true, m.label);
      failures += !eq;
      std::printf("| %lldx%lld | %s | %.4f | %.2f | %.4f | %.2f | %.2f | %s |\n", (long long)R, (long long)C, m.label,
                  t_new, copy / t_new, t_old, copy / t_old, t_old / t_new, eq ? "yes" : "NO");
      std::fflush(stdout);
      free_out(a, true);
      free_out(b, true);
      cudaFree(src);
      cudaFree(dst);
    }
    cudaFree(xs[0]);
    cudaFree(xs[1]);
    cudaFree(amax_d);
  }
  std::printf("%s\n", failures ? "FAILED" : "all bytes equal");
  return failures ? 1 : 0;
}
