"""count_fns.py TEXT N: the LLVM IR on stdin has exactly N functions containing TEXT."""
import sys

text, want = sys.argv[1], int(sys.argv[2])
count, inside, hit = 0, False, False
for line in sys.stdin:
    if line.startswith("define "):
        inside, hit = True, False
    elif line.startswith("}"):
        count += inside and hit
        inside = False
    elif inside and text in line:
        hit = True
if count != want:
    sys.exit("%d functions contain %r, expected %d" % (count, text, want))
