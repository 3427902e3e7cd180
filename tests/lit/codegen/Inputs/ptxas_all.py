"""Assembles the PTX of every .rein file in the given directories with ptxas, for sm_80 and sm_90.

usage: ptxas_all.py REIN PTXAS WORKDIR DIR...   (exit 1 listing the failures)
"""
import glob
import os
import subprocess
import sys

rein, ptxas, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
files = sorted(f for d in sys.argv[4:] for f in glob.glob(os.path.join(d, "*.rein")))
bad = []
for f in files:
    for arch in ("sm_80", "sm_90"):
        ptx = os.path.join(work, os.path.basename(f) + "." + arch + ".ptx")
        with open(ptx, "w") as out:
            r = subprocess.run([rein, "emit", "--ptx", "--arch", arch, f], stdout=out, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            bad.append("%s %s: rein: %s" % (f, arch, r.stderr.strip()))
            continue
        r = subprocess.run([ptxas, "-arch=" + arch, ptx, "-o", ptx + ".cubin"], capture_output=True, text=True)
        if r.returncode != 0:
            bad.append("%s %s: ptxas: %s" % (f, arch, (r.stdout + r.stderr).strip()))
print("ptxas: %d programs, %d architectures, %d failures" % (len(files), 2, len(bad)))
for b in bad:
    print(b)
sys.exit(1 if bad or not files else 0)
