"""expect_exit.py CODE CMD ARGS...: runs CMD, discarding its output, and fails unless it exits with
exactly CODE.  Unlike `not`, this tells an orderly error exit from a crash (a signal)."""
import subprocess
import sys

want = int(sys.argv[1])
got = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
if got != want:
    sys.exit(f"expected exit status {want}, got {got} from {' '.join(sys.argv[2:])}")
