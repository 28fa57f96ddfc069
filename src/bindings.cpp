// fp4gemm._C: a thin pybind11 layer over the C++ API. Tensors arrive as raw addresses (ints), shapes
// and strides; the Python package owns the torch side. std::invalid_argument becomes ValueError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "fp4gemm/fp4gemm.h"

namespace py = pybind11;
using namespace fp4gemm;

namespace {
template <class T> T* ptr(uintptr_t a) { return reinterpret_cast<T*>(a); }
template <class T> uintptr_t addr(T* p) { return reinterpret_cast<uintptr_t>(p); }
}  // namespace

// Pointer fields are exposed as integer addresses.
#define FP4_PTR_FIELD(Class, field, T) \
  def_property(#field, [](const Class& c) { return addr(c.field); }, [](Class& c, uintptr_t a) { c.field = ptr<T>(a); })

PYBIND11_MODULE(_C, m) {
  m.doc() = "fp4gemm native core (C++ API over raw pointers)";

  py::enum_<Format>(m, "Format").value("MXFP4", Format::MXFP4).value("NVFP4", Format::NVFP4).value("FP4Row", Format::FP4Row);
  py::enum_<ScaleRule>(m, "ScaleRule")
      .value("Floor", ScaleRule::Floor).value("RCeil", ScaleRule::RCeil).value("Even", ScaleRule::Even)
      .value("Quest", ScaleRule::Quest).value("TE", ScaleRule::TE).value("Torchao", ScaleRule::Torchao)
      .value("Pow2", ScaleRule::Pow2).value("Amax", ScaleRule::Amax);
  py::enum_<Rounding>(m, "Rounding").value("RTN", Rounding::RTN).value("SR", Rounding::SR);
  py::enum_<Mma>(m, "Mma").value("Auto", Mma::Auto).value("FP8", Mma::FP8).value("BF16", Mma::BF16).value("FP4", Mma::FP4);
  py::enum_<GemmPath>(m, "GemmPath")
      .value("Sm90FP8", GemmPath::Sm90FP8).value("Sm90BF16", GemmPath::Sm90BF16)
      .value("Sm100FP4", GemmPath::Sm100FP4).value("Sm120FP4", GemmPath::Sm120FP4);
  py::enum_<DType>(m, "DType").value("F32", DType::F32).value("F16", DType::F16).value("BF16", DType::BF16);

  py::class_<QuantizeConfig>(m, "QuantizeConfig")
      .def(py::init<>())
      .def_readwrite("fmt", &QuantizeConfig::fmt)
      .def_readwrite("scale_rule", &QuantizeConfig::scale_rule)
      .def_readwrite("rounding", &QuantizeConfig::rounding)
      .def_readwrite("prescale", &QuantizeConfig::prescale)
      .def_readwrite("block_2d", &QuantizeConfig::block_2d)
      .def_readwrite("hadamard", &QuantizeConfig::hadamard)
      .def_property("hadamard_signs",
                    [](const QuantizeConfig& c) { return std::array<uint32_t, 8>{c.hadamard_signs[0], c.hadamard_signs[1], c.hadamard_signs[2], c.hadamard_signs[3], c.hadamard_signs[4], c.hadamard_signs[5], c.hadamard_signs[6], c.hadamard_signs[7]}; },
                    [](QuantizeConfig& c, const std::array<uint32_t, 8>& s) { for (int i = 0; i < 8; ++i) c.hadamard_signs[i] = s[size_t(i)]; })
      .def_readwrite("seed", &QuantizeConfig::seed)
      .def_readwrite("offset", &QuantizeConfig::offset)
      .FP4_PTR_FIELD(QuantizeConfig, amax_in, const float);

  py::class_<QuantizedOut>(m, "QuantizedOut")
      .def(py::init<>())
      .FP4_PTR_FIELD(QuantizedOut, data, uint8_t)
      .FP4_PTR_FIELD(QuantizedOut, scale, void)
      .FP4_PTR_FIELD(QuantizedOut, amax, float)
      .FP4_PTR_FIELD(QuantizedOut, clip_mask, uint8_t)
      .def_readwrite("scale_blocked", &QuantizedOut::scale_blocked);

  py::class_<QuantizedIn>(m, "QuantizedIn")
      .def(py::init<>())
      .def_readwrite("fmt", &QuantizedIn::fmt)
      .def_readwrite("scale_rule", &QuantizedIn::scale_rule)
      .FP4_PTR_FIELD(QuantizedIn, data, const uint8_t)
      .FP4_PTR_FIELD(QuantizedIn, scale, const void)
      .def_readwrite("global_scale", &QuantizedIn::global_scale)
      .FP4_PTR_FIELD(QuantizedIn, amax, const float)
      .def_readwrite("rows", &QuantizedIn::rows)
      .def_readwrite("k", &QuantizedIn::k)
      .def_readwrite("scale_blocked", &QuantizedIn::scale_blocked);

  py::class_<GemmArgs>(m, "GemmArgs")
      .def(py::init<>())
      .def_readwrite("a", &GemmArgs::a)
      .def_readwrite("b", &GemmArgs::b)
      .def_readwrite("alpha", &GemmArgs::alpha)
      .FP4_PTR_FIELD(GemmArgs, bias, const float)
      .FP4_PTR_FIELD(GemmArgs, c, const float)
      .def_readwrite("beta", &GemmArgs::beta)
      .FP4_PTR_FIELD(GemmArgs, d, void)
      .def_readwrite("out_dtype", &GemmArgs::out_dtype)
      .def_readwrite("fp32_accumulate", &GemmArgs::fp32_accumulate)
      .def_readwrite("mma", &GemmArgs::mma)
      .FP4_PTR_FIELD(GemmArgs, workspace, void)
      .def_readwrite("workspace_size", &GemmArgs::workspace_size);

  py::class_<QGemmInput>(m, "QGemmInput")
      .def(py::init<>())
      .FP4_PTR_FIELD(QGemmInput, x, const void)
      .def_readwrite("dtype", &QGemmInput::dtype)
      .def_readwrite("R", &QGemmInput::R)
      .def_readwrite("C", &QGemmInput::C)
      .def_readwrite("ld", &QGemmInput::ld)
      .def_readwrite("columnwise", &QGemmInput::columnwise)
      .def_readwrite("cfg", &QGemmInput::cfg);

  m.def("block_size", &block_size);
  m.def("default_scale_rule", &default_scale_rule);
  m.def("rule_fits_format", &rule_fits_format);
  m.def(
      "quantize",
      [](uintptr_t x, DType dt, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
         const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out, bool device,
         uintptr_t stream) {
        quantize(ptr<const void>(x), dt, R, C, ld, row_cfg, row_out, col_cfg, col_out, device, ptr<void>(stream));
      },
      py::arg("x"), py::arg("dtype"), py::arg("R"), py::arg("C"), py::arg("ld"), py::arg("row_cfg").none(true),
      py::arg("row_out").none(true), py::arg("col_cfg").none(true), py::arg("col_out").none(true),
      py::arg("device") = false, py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
  m.def(
      "dequantize",
      [](const QuantizedIn& q, uintptr_t out, bool device, uintptr_t stream) {
        dequantize(q, ptr<float>(out), device, ptr<void>(stream));
      },
      py::arg("q"), py::arg("out"), py::arg("device") = false, py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>());
  // d_quant / d_out: GemmArgs' pointers to a quantized D, passed beside the arguments.
  m.def(
      "gemm",
      [](GemmArgs a, bool device, uintptr_t stream, const QuantizeConfig* d_quant, const QuantizedOut* d_out) {
        a.d_quant = d_quant;
        a.d_out = d_out;
        gemm(a, device, ptr<void>(stream));
      },
      py::arg("args"), py::arg("device") = false, py::arg("stream") = 0, py::arg("d_quant").none(true) = nullptr,
      py::arg("d_out").none(true) = nullptr, py::call_guard<py::gil_scoped_release>());
  m.def(
      "gemm_workspace_size",
      [](GemmArgs a, bool device, const QuantizeConfig* d_quant, const QuantizedOut* d_out) {
        a.d_quant = d_quant;
        a.d_out = d_out;
        return gemm_workspace_size(a, device);
      },
      py::arg("args"), py::arg("device") = false, py::arg("d_quant").none(true) = nullptr,
      py::arg("d_out").none(true) = nullptr);
  m.def(
      "qgemm",
      [](const QGemmInput& a, const QGemmInput& b, const GemmArgs& args, uintptr_t workspace, size_t workspace_size,
         bool device, uintptr_t stream) {
        qgemm(a, b, args, ptr<void>(workspace), workspace_size, device, ptr<void>(stream));
      },
      py::arg("a"), py::arg("b"), py::arg("args"), py::arg("workspace"), py::arg("workspace_size"),
      py::arg("device") = false, py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
  m.def("qgemm_workspace_size", &qgemm_workspace_size, py::arg("a"), py::arg("b"), py::arg("args"),
        py::arg("device") = false);
  m.def("gemm_path", &gemm_path, py::arg("args"), py::arg("cc_major"), py::arg("cc_minor"));
  m.def("native_gemm_check", &native_gemm_check, py::arg("args"), py::arg("path"));
  m.def("native_cutlass_can_implement", &native_cutlass_can_implement, py::arg("args"), py::arg("path"));
  m.def("built_with_path", &built_with_path, py::arg("path"));
  m.def("native_scale_offsets", &native_scale_offsets, py::arg("path"), py::arg("fmt"), py::arg("rows"), py::arg("k"),
        py::arg("operand_b"));
  m.def("built_with_cuda", [] {
#ifdef FP4GEMM_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("blocked_size", &blocked_size);
  m.def(
      "scales_to_blocked",
      [](uintptr_t src, int64_t rows, int64_t cols, uintptr_t dst) {
        scales_to_blocked(ptr<const uint8_t>(src), rows, cols, ptr<uint8_t>(dst));
      },
      py::call_guard<py::gil_scoped_release>());
  m.def(
      "scales_from_blocked",
      [](uintptr_t src, int64_t rows, int64_t cols, uintptr_t dst) {
        scales_from_blocked(ptr<const uint8_t>(src), rows, cols, ptr<uint8_t>(dst));
      },
      py::call_guard<py::gil_scoped_release>());
  m.def(
      "hadamard_transform",
      [](uintptr_t x, DType dt, int64_t rows, int64_t K, int64_t ld, int g, const std::array<uint32_t, 8>& signs,
         uintptr_t out, bool device, uintptr_t stream) {
        hadamard_transform(ptr<const void>(x), dt, rows, K, ld, g, signs.data(), ptr<float>(out), device, ptr<void>(stream));
      },
      py::call_guard<py::gil_scoped_release>());
  m.def("hadamard_signs_from_seed", [](uint64_t seed) {
    std::array<uint32_t, 8> out{};
    hadamard_signs_from_seed(seed, out.data());
    return out;
  });
  m.def("cuda_available", &cuda_available);
  m.def("cuda_capability", &cuda_capability);
}
