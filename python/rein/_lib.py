"""_lib.py — the runtime's C API (runtime/include/rein/runtime.h, objective.h) through ctypes.

The structures are mirrored field by field; at import every mirror's size (and the offset of a
late field) is compared with what the shared library itself reports (python/rein_py.c), so a
change of the C layout stops the import with a message instead of corrupting memory.

librein_runtime.so is found, in this order, at: $REIN_LIB; next to this package
(rein/librein_runtime.so, where `pip install` users copy it); the build trees build/ and
build-test/ of the repository that holds this package (python/CMakeLists.txt builds it there).
"""

import ctypes
import os

from .errors import ReinError

c_int64, c_int32, c_uint32, c_uint64 = ctypes.c_int64, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64
c_double_p = ctypes.POINTER(ctypes.c_double)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)

NUM_INPUTS = 10  # REIN_NUM_INPUTS, checked against the library below


class Param(ctypes.Structure):  # rein_param
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_double), ("kind", c_int32), ("update", c_int32)]


class UInput(ctypes.Structure):  # rein_uinput
    _fields_ = [("name", ctypes.c_char_p), ("level", c_int64)]


class Desc(ctypes.Structure):  # rein_objective (the fields read here; the layout is all of it)
    _fields_ = [
        ("magic", c_uint32), ("abi_version", c_uint32),
        ("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
        ("nparams", c_int32), ("nuinputs", c_int32), ("nmetrics", c_int32), ("npasses", c_int32),
        ("params", ctypes.POINTER(Param)), ("uinputs", ctypes.POINTER(UInput)),
        ("metrics", ctypes.POINTER(ctypes.c_char_p)), ("passes", ctypes.c_void_p),
        ("inputs_used", c_uint32), ("flags", c_uint32),
        ("ntok_arrays", c_int32), ("nseq_arrays", c_int32), ("ngrp_arrays", c_int32), ("nslots", c_int32),
        ("nreductions", c_int32), ("nptx", c_int32),
        ("finish", ctypes.c_void_p), ("outputs", ctypes.c_void_p),
        ("ptx_arch", ctypes.c_void_p), ("ptx", ctypes.c_void_p),
    ]


class Batch(ctypes.Structure):  # rt_batch
    _fields_ = [
        ("ngroups", c_int64), ("nseqs", c_int64), ("ntoks", c_int64),
        ("grp_seq", c_int32_p), ("seq_tok", c_int32_p),
        ("inp", c_float_p * NUM_INPUTS),
        ("uin", ctypes.POINTER(c_float_p)),
        ("seed", c_uint64), ("step", c_uint64),
        ("in64", c_double_p * NUM_INPUTS),
        ("uin64", ctypes.POINTER(c_double_p)),
    ]


class Result(ctypes.Structure):  # rt_result
    _fields_ = [
        ("loss", ctypes.c_double), ("metrics", c_double_p), ("grad", c_double_p * 2),
        ("grad32", ctypes.POINTER(ctypes.c_float) * 2), ("nmetrics", c_int64), ("ntoks", c_int64),
    ]


# rein_objective.flags
USES_UNIFORM, FINAL_SWEEP, GRAD_LOGP, GRAD_ENTROPY, STATS = 1, 2, 4, 8, 16
TOKEN, SEQ = 0, 1


def _candidates():
    env = os.environ.get("REIN_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    return [os.path.join(here, "librein_runtime.so")] + [
        os.path.join(repo, b, "python", "librein_runtime.so") for b in ("build", "build-test")]


def _load():
    tried = _candidates()
    path = next((p for p in tried if os.path.exists(p)), None)
    if path is None:
        raise ImportError("rein: librein_runtime.so not found (tried %s); build it with cmake "
                          "(target rein_runtime) and set REIN_LIB to its path" % ", ".join(tried))
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        hint = ""
        if "asan" in str(e).lower():
            hint = (" (a library built with REIN_SANITIZE=ON needs LD_PRELOAD=$(clang-19 "
                    "-print-file-name=libclang_rt.asan-x86_64.so) ASAN_OPTIONS=detect_leaks=0)")
        raise ImportError("rein: cannot load %s: %s%s" % (path, e, hint)) from None
    return lib, path


lib, LIB_PATH = _load()

_sig = {
    "rt_open": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "rt_close": (None, [ctypes.c_void_p]),
    "rt_desc": (ctypes.POINTER(Desc), [ctypes.c_void_p]),
    "rt_exec_new": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.c_size_t]),
    "rt_exec_free": (None, [ctypes.c_void_p]),
    "rt_begin": (ctypes.c_bool, [ctypes.c_void_p, ctypes.POINTER(Batch), c_double_p, ctypes.c_char_p,
                                 ctypes.c_size_t]),
    "rt_stat": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "rt_micro": (ctypes.c_bool, [ctypes.c_void_p, c_int64, c_int64, ctypes.POINTER(c_float_p),
                                 ctypes.c_char_p, ctypes.c_size_t]),
    "rt_end": (ctypes.c_bool, [ctypes.c_void_p, ctypes.POINTER(Result), ctypes.c_char_p, ctypes.c_size_t]),
}
for _n, (_r, _a) in _sig.items():
    getattr(lib, _n).restype = _r
    getattr(lib, _n).argtypes = _a
for _n in ("rein_sizeof_rt_batch", "rein_sizeof_rt_result", "rein_sizeof_objective", "rein_sizeof_uinput",
           "rein_sizeof_param", "rein_offsetof_objective_inputs_used", "rein_offsetof_rt_batch_in64"):
    getattr(lib, _n).restype = ctypes.c_size_t
    getattr(lib, _n).argtypes = []
for _n in ("rein_input_name_of", "rein_trainer_const_name_of"):
    getattr(lib, _n).restype = ctypes.c_char_p
    getattr(lib, _n).argtypes = [ctypes.c_int]
for _n in ("rein_input_level", "rein_input_is_bool"):
    getattr(lib, _n).argtypes = [ctypes.c_int]


def _check_layout():
    checks = [
        ("REIN_NUM_INPUTS", lib.rein_num_inputs(), NUM_INPUTS),
        ("sizeof(rt_batch)", lib.rein_sizeof_rt_batch(), ctypes.sizeof(Batch)),
        ("offsetof(rt_batch, in64)", lib.rein_offsetof_rt_batch_in64(), Batch.in64.offset),
        ("sizeof(rt_result)", lib.rein_sizeof_rt_result(), ctypes.sizeof(Result)),
        ("sizeof(rein_objective)", lib.rein_sizeof_objective(), ctypes.sizeof(Desc)),
        ("offsetof(rein_objective, inputs_used)", lib.rein_offsetof_objective_inputs_used(),
         Desc.inputs_used.offset),
        ("sizeof(rein_uinput)", lib.rein_sizeof_uinput(), ctypes.sizeof(UInput)),
        ("sizeof(rein_param)", lib.rein_sizeof_param(), ctypes.sizeof(Param)),
    ]
    bad = ["%s is %d in C, %d in python/rein/_lib.py" % (n, c, p) for n, c, p in checks if c != p]
    if bad:
        raise ImportError("rein: %s does not match this binding: %s" % (LIB_PATH, "; ".join(bad)))


_check_layout()
ABI_VERSION = lib.rein_abi_version()
DEVICE_CPU, DEVICE_GPU = lib.rein_device_cpu(), lib.rein_device_gpu()
# the built-in inputs in ABI order: (name, level, is_bool)
INPUTS = [(lib.rein_input_name_of(k).decode(), lib.rein_input_level(k), bool(lib.rein_input_is_bool(k)))
          for k in range(NUM_INPUTS)]
INPUT_INDEX = {n: k for k, (n, _, _) in enumerate(INPUTS)}
COMPUTED = ("pos", "len")  # the kernels compute these from the layout
# rein_param.kind: a hyper-parameter, a state carried across steps, a trainer constant
PARAM_PARAM, PARAM_STATE, PARAM_TRAINER = (lib.rein_param_kind_param(), lib.rein_param_kind_state(),
                                           lib.rein_param_kind_trainer())
# the trainer constants' names (REIN_TRAINER_CONST_LIST): max_new, group_size, step
TRAINER_CONSTS = [lib.rein_trainer_const_name_of(k).decode() for k in range(lib.rein_num_trainer_consts())]


def errbuf():
    return ctypes.create_string_buffer(1024)


def call(fn, *args):
    """Runs a bool-returning runtime function; ReinError with its message on failure."""
    err = errbuf()
    if not fn(*args, err, len(err)):
        raise ReinError(err.value.decode(errors="replace") or "%s failed" % fn.__name__)
