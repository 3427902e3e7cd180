/* rk_lib_fma.c — compiler/rk_lib.c built as the code generator's host bitcode is compiled for an
 * x86 CPU with FMA (tests/CMakeLists.txt: -mfma -ffp-contract=on): its multiply-adds fused, so
 * test_rk_fma measures the accuracy of the math the generated token loops run on such a CPU. */
#include "rk_lib.c"
