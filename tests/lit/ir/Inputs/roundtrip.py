"""Round trip of the IR text form over every objective in the given directories.

usage: roundtrip.py REIN TMPDIR DIR...

For each DIR/*.rein (sorted), with P = `rein emit --plan F`:
  ir     `emit --ir F` written to T.ir reads back and prints identically (`emit --ir T.ir`);
  grad   the same for `emit --grad` (T.grad.ir);
  nograd `emit --grad --dump-after=grad T.grad.ir` dumps T.grad.ir unchanged after the grad pass:
         an .ir that already has grad lines is not differentiated again;
  regrad `emit --grad T.ir` (differentiating the read IR) equals `emit --grad F`;
  plan   `emit --plan T.ir` and `emit --plan T.grad.ir` equal P.
Prints `ok NAME` per file, or `FAIL NAME: what` with a diff, and exits 1 if anything failed.
"""
import difflib
import os
import subprocess
import sys


def emit(rein, *args):
    r = subprocess.run([rein, "emit", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"`rein emit {' '.join(args)}` exited {r.returncode}: {r.stderr}")
    return r.stdout


def same(what, want, got, problems):
    if want != got:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "want", "got"))
        problems.append(f"{what}\n{diff}")


def check(rein, tmp, path):
    name = os.path.basename(path)[:-len(".rein")]
    t_ir, t_grad = os.path.join(tmp, name + ".ir"), os.path.join(tmp, name + ".grad.ir")
    problems = []
    ir, grad, plan = emit(rein, "--ir", path), emit(rein, "--grad", path), emit(rein, "--plan", path)
    with open(t_ir, "w") as f:
        f.write(ir)
    with open(t_grad, "w") as f:
        f.write(grad)
    same("ir: emit --ir of the printed IR", ir, emit(rein, "--ir", t_ir), problems)
    same("grad: emit --grad of the printed differentiated IR", grad, emit(rein, "--grad", t_grad), problems)
    dumped = emit(rein, "--grad", "--dump-after=grad", t_grad)
    head = "# after grad\n"
    same("nograd: the graph after the grad pass", head + grad, dumped[:len(head) + len(grad)], problems)
    same("regrad: emit --grad of the printed IR", grad, emit(rein, "--grad", t_ir), problems)
    same("plan: emit --plan of the printed IR", plan, emit(rein, "--plan", t_ir), problems)
    same("plan: emit --plan of the printed differentiated IR", plan, emit(rein, "--plan", t_grad), problems)
    if not ir.startswith("objective ") or "\nloss %" not in ir or "\ngrad " not in grad:
        problems.append("the output does not look like IR")
    return name, problems


def main():
    rein, tmp, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(tmp, exist_ok=True)
    failed = False
    for d in dirs:
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".rein"):
                continue
            try:
                name, problems = check(rein, tmp, os.path.join(d, fn))
            except RuntimeError as e:
                name, problems = fn, [str(e)]
            failed |= bool(problems)
            print(f"ok {name}" if not problems else f"FAIL {name}: " + "\n".join(problems))
    sys.exit(1 if failed else 0)


main()
