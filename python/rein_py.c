/* rein_py.c — the few facts the Python binding (python/rein/_lib.py) reads from C rather than
 * writing them twice: struct sizes (checked against the ctypes mirrors at import), the built-in
 * inputs' names and levels (REIN_INPUT_LIST), the param kinds (REIN_PARAM_*), the trainer
 * constants' names (REIN_TRAINER_CONST_LIST), the device enum and the ABI version.  Compiled into
 * librein_runtime.so with the runtime's objective and common sources (python/CMakeLists.txt). */
#include <stddef.h>

#include "rein/objective.h"
#include "rein/runtime.h"

size_t rein_sizeof_rt_batch(void) { return sizeof(rt_batch); }
size_t rein_sizeof_rt_result(void) { return sizeof(rt_result); }
size_t rein_sizeof_objective(void) { return sizeof(rein_objective); }
size_t rein_sizeof_uinput(void) { return sizeof(rein_uinput); }
size_t rein_sizeof_param(void) { return sizeof(rein_param); }
/* the offsets of the fields the binding reads past the first ones, against the mirror's */
size_t rein_offsetof_objective_inputs_used(void) { return offsetof(rein_objective, inputs_used); }
size_t rein_offsetof_rt_batch_in64(void) { return offsetof(rt_batch, in64); }

int rein_abi_version(void) { return REIN_ABI_VERSION; }
int rein_num_inputs(void) { return REIN_NUM_INPUTS; }
const char *rein_input_name_of(int k) { return rein_input_name(k); }

int rein_input_level(int k) {
#define X(ID, name, level, is_bool, diff) if (k == REIN_IN_##ID) return level;
  REIN_INPUT_LIST(X)
#undef X
  return -1;
}

int rein_input_is_bool(int k) {
#define X(ID, name, level, is_bool, diff) if (k == REIN_IN_##ID) return is_bool;
  REIN_INPUT_LIST(X)
#undef X
  return -1;
}

int rein_device_cpu(void) { return RT_CPU; }
int rein_device_gpu(void) { return RT_GPU; }

int rein_param_kind_param(void) { return REIN_PARAM_PARAM; }
int rein_param_kind_state(void) { return REIN_PARAM_STATE; }
int rein_param_kind_trainer(void) { return REIN_PARAM_TRAINER; }
int rein_num_trainer_consts(void) { return REIN_NUM_TRAINER_CONSTS; }
const char *rein_trainer_const_name_of(int k) { return rein_trainer_const_name(k); }
