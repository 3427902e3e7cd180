# lit configuration for Rein's golden tests.
#
# A test is a .rein file whose `# RUN:` comment lines say how to run it; `# CHECK:` lines are
# matched by FileCheck.  Substitutions: %rein (the driver), %python, %S/%s/%t as usual in lit.
import os
import lit.formats

config.name = "rein"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".rein", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.rein_obj_root, "tests", "lit")

config.substitutions.append(("%rein", config.rein_bin))
config.substitutions.append(("%python", config.python))
config.substitutions.append(("%std", os.path.join(config.rein_src_root, "lang", "std")))
config.substitutions.append(("%examples", os.path.join(config.rein_src_root, "examples")))

config.environment["PATH"] = os.pathsep.join(
    [config.llvm_tools_dir, config.environment.get("PATH", "")])
# Sanitizer settings pass through so that a sanitized build's tests fail on any report.
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
