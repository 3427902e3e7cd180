"""Checks `rein emit --grad --terms` against `rein eval`: the printed d term/d logp (and d entropy)
expressions are valid Rein, and their sum over the terms is the gradient the compiler computes.

usage: check_terms.py REIN BATCH.json OUTDIR FILE.rein...

For each program, the expressions printed for its terms are summed into G and appended as metrics
sum[batch](G * (pos + 1)) (per-token weights 1, 2, 3, ... so that a wrong token shows; 1 for every
token where the program redefines `pos`), and
`rein eval` must give the same number as the sum of its own gradient times (pos + 1), within 1e-9
relative (the interpreter is float64).  Programs whose view uses a form that is not source syntax
(`over=`, argmax/argmin) or that declare inputs the batch lacks are counted as skipped; at least
one program must be checked.  Exit status 1 on any mismatch.
"""
import json
import os
import re
import subprocess
import sys


def main():
    rein, batch, outdir, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(outdir, exist_ok=True)
    checked = skipped = bad = 0
    for path in files:
        src = open(path).read()
        view = subprocess.run([rein, 'emit', '--grad', '--terms', path], capture_output=True,
                              text=True, check=True).stdout
        sums = {'logp': [], 'entropy': []}
        for m in re.finditer(r'^#   d/d(logp|entropy) = (.*)$', view, re.M):
            sums[m.group(1)].append(m.group(2))
        text = ' '.join(sums['logp'] + sums['entropy'])
        if re.search(r'\binput\b', src) or 'over=' in text or 'argm' in text or not sums['logp']:
            skipped += 1
            continue
        # a program may give `pos` another meaning (red_drop): then every token weighs 1
        own_pos = re.search(r'\b(let|param|const|fn)\s+pos\b', src)
        weight = '(logp <= 0)' if own_pos else '(pos + 1)'
        prog = src + '\n'
        for k in ('logp', 'entropy'):
            g = ' + '.join('(%s)' % e for e in sums[k]) or '0'
            prog += 'metric gv_check_%s = sum[batch]((%s) * %s);\n' % (k, g, weight)
        out = os.path.join(outdir, os.path.basename(path))
        open(out, 'w').write(prog)
        # the trainer's constants, which the batch file lacks, get fixed values
        sets = []
        for name, value in (('max_new', '64'), ('group_size', '4'), ('step', '3')):
            if re.search(r'\b%s\b' % name, re.sub(r'#.*', '', src)):
                sets += ['--set', '%s=%s' % (name, value)]
        r = subprocess.run([rein, 'eval', out, '--batch', batch] + sets, capture_output=True,
                           text=True)
        if r.returncode != 0:
            print('%s: rein eval failed:\n%s' % (path, r.stderr))
            bad += 1
            continue
        res = json.loads(r.stdout)
        for k in ('logp', 'entropy'):
            want = 0.0
            for grp in res['grad'][k]:
                for seq in grp:
                    want += sum(g * (1 if own_pos else t + 1) for t, g in enumerate(seq))
            got = res['metrics']['gv_check_' + k]
            if abs(got - want) > 1e-9 * max(1.0, abs(want)):
                print('%s: d/d%s: the view sums to %r, rein eval to %r' % (path, k, got, want))
                bad += 1
        checked += 1
    print('%d programs checked, %d skipped, %d mismatches' % (checked, skipped, bad))
    sys.exit(1 if bad or checked == 0 else 0)


main()
