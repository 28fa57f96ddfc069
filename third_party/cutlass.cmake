# Sets CUTLASS_INCLUDE_DIR (cutlass/ and cute/ headers) and CUTLASS_UTIL_INCLUDE_DIR, or leaves them empty.
set(_cutlass_hint "$ENV{CUTLASS_DIR}")
if(CUTLASS_DIR)
  set(_cutlass_hint "${CUTLASS_DIR}")
endif()
set(CUTLASS_INCLUDE_DIR "")
if(_cutlass_hint AND EXISTS "${_cutlass_hint}/include/cutlass/cutlass.h")
  set(CUTLASS_INCLUDE_DIR "${_cutlass_hint}/include")
else()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
    OUTPUT_VARIABLE _wheel_inc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_wheel_inc AND EXISTS "${_wheel_inc}/cutlass/cutlass.h")
    set(CUTLASS_INCLUDE_DIR "${_wheel_inc}")
  endif()
endif()
if(CUTLASS_INCLUDE_DIR)
  # cutlass/util/ (packed strides) sits beside include/ in the wheel and in a source checkout.
  get_filename_component(_cutlass_root "${CUTLASS_INCLUDE_DIR}" DIRECTORY)
  set(CUTLASS_UTIL_INCLUDE_DIR "${_cutlass_root}/tools/util/include")
  message(STATUS "fp4gemm: CUTLASS headers in ${CUTLASS_INCLUDE_DIR}")
else()
  message(STATUS "fp4gemm: CUTLASS not found (set CUTLASS_DIR or pip install nvidia-cutlass)")
endif()
