#!/usr/bin/python3
"""Seeded generator of random, valid Rein programs for back-end differential testing.

    /usr/bin/python3 tests/backend/gen_programs.py --seed S --count N --out DIR [--rein PATH]

writes DIR/p0000.rein ... DIR/p{N-1}.rein.  Program i depends only on (S, i), through its own
random.Random, so the same seed always gives the same files.  With --rein PATH every file is also
run through `PATH check`, which must exit 0 and print nothing (no warning either: a product of
two factors that depend on logp wraps both in keepgrad(), the identity); the failing
files are listed and the exit status is 1.  A coverage summary goes to stderr.

Every program is valid by construction:
  * levels: element-wise nodes take the finest level of their operands, reductions go to a strictly
    coarser level, filters are bools at the value's level or coarser, rank keeps its argument's level,
    as do the scans cumsum/revcumsum[seq] (of a token value, a literal discount) and the selectors
    topk/topfrac (bools); median/quantile (a literal q) reduce like the other reductions;
  * types: and/or/not and the condition of where get bools, count gets a bool, the loss and the
    metrics are batch floats, the loss depends differentiably on logp or entropy;
  * micro-batch decomposability (spec section 5): every expression carries a `fin` flag ("needs a
    batch-level reduction or ranking of a logp/entropy-dependent value").  The per-token part X of
    the loss is never fin; the loss is a linear combination (coefficients independent of
    logp/entropy) of mean[batch](X [, filter independent of logp/entropy]),
    sum[batch](X [, filter]) / N and sum[batch](X [, filter]), plus, sometimes, a term without a
    gradient (sg(...), counts) that may be fin.  Metrics use fin values freely;
  * no unused let, param, input or fn (they would give warnings): parameters, constants, inputs
    and fns are declared only when used, and a let nothing uses becomes a metric.

Numerics.  Each float node carries a conservative interval (from assumed input ranges and element
counts).  In guarded programs (about 90%) the arguments of exp/expm1 are kept in [-20, 20], the
arguments of log/sqrt/pow (non-integer exponents) are kept positive, log1p's above -0.9,
denominators away from zero, logsumexp of a possibly empty set is bounded below, and magnitudes
stay below about 1e6.  Comparisons never test two computed floats for equality: == and != compare
integer-valued expressions (pos, len, lag, counts, ranks, bools); raw inputs are compared with
dyadic constants (exact in float32), computed floats only with `irregular' thresholds (x.xx73) or
params, so no tie depends on rounding.  The other programs (`# mode: unguarded`) drop most guards
on simple arguments (raw inputs, integer-valued values), so inf/NaN appear (log(logp),
x / len with empty sequences, logsumexp over nothing, ...) but always at exact, rounding-free points.
"""
import argparse
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter

TOK, SEQ, GRP, BAT = 0, 1, 2, 3
LVN = ('token', 'seq', 'group', 'batch')
INF = float('inf')

# name: (level, type, lo, hi, integer-valued, d/dlogp, d/dentropy)
INPUTS = {
    'logp': (TOK, 'f', -5.0, 0.0, False, True, False),
    'entropy': (TOK, 'f', 0.0, 3.0, False, False, True),
    'old_logp': (TOK, 'f', -5.0, 0.0, False, False, False),
    'ref_logp': (TOK, 'f', -5.0, 0.0, False, False, False),
    'pos': (TOK, 'f', 0.0, 63.0, True, False, False),
    'reward': (SEQ, 'f', -1.0, 2.0, False, False, False),
    'len': (SEQ, 'f', 0.0, 64.0, True, False, False),
    'truncated': (SEQ, 'b', 0.0, 1.0, True, False, False),
    'lag': (SEQ, 'f', 0.0, 16.0, True, False, False),
}
UIN_RANGE = (-2.0, 2.0)
# most elements a reduction to R over level E may see (only for the intervals)
NMAX = {(SEQ, TOK): 64, (GRP, SEQ): 16, (GRP, TOK): 512, (BAT, GRP): 16, (BAT, SEQ): 128,
        (BAT, TOK): 2048}
CNT_RANGE = {SEQ: (0.0, 64.0), GRP: (1.0, 16.0), BAT: (1.0, 128.0)}  # count[L]()
# typical sizes (only to place comparison thresholds and clamp bounds where values are)
NTYP = {(SEQ, TOK): 6, (GRP, SEQ): 3, (GRP, TOK): 18, (BAT, GRP): 3, (BAT, SEQ): 9, (BAT, TOK): 54}
CNT_TYP = {SEQ: (0.0, 10.0), GRP: (1.0, 4.0), BAT: (1.0, 12.0)}
INT_TYP = {'pos': (0.0, 8.0), 'len': (0.0, 10.0), 'lag': (0.0, 3.0)}
# (R, E) pairs whose reduction is never empty without a filter (groups have >= 1 sequence)
NONEMPTY = {(GRP, SEQ), (BAT, SEQ), (BAT, GRP)}

FUNCS1 = ('exp', 'log', 'log1p', 'expm1', 'sqrt', 'abs', 'sign', 'sigmoid', 'softplus', 'tanh')
ALL_FUNCS = FUNCS1 + ('min', 'max', 'clamp', 'pow', 'where', 'sg', 'uniform')
ALL_OPS = ('neg', 'not', '+', '-', '*', '/', '^', '<', '<=', '>', '>=', '==', '!=', 'and', 'or')
REDS = ('sum', 'mean', 'max', 'min', 'std', 'var', 'logsumexp', 'count', 'rank')
COMBOS = ((SEQ, TOK), (GRP, TOK), (GRP, SEQ), (BAT, TOK), (BAT, SEQ), (BAT, GRP))

# dyadic thresholds (exact in float32) for comparisons of raw inputs
DYADIC = {
    'logp': ('-3.5', '-3.25', '-2.5', '-1.75', '-1.25', '-1', '-0.5'),
    'entropy': ('0.5', '0.75', '1', '1.5', '2', '2.25'),
    'reward': ('-0.25', '0', '0.25', '0.5', '1', '1.25'),
    'uin': ('-1', '-0.5', '0', '0.5', '1', '0.75'),
    'uniform': ('0.25', '0.375', '0.5', '0.625', '0.75'),
}
DYADIC['old_logp'] = DYADIC['ref_logp'] = DYADIC['logp']
INT_THRESH = {'pos': (0, 1, 2, 3, 5, 8), 'len': (0, 1, 2, 4, 6, 10), 'lag': (0, 1, 2, 3)}
LITERALS = ('0.5', '1', '2', '0.25', '0.1', '3', '1.5', '0.2', '4', '0.75', '0.05', '10', '0.3')
PARAM_DEFAULTS = ('0.2', '0.1', '0.5', '0.05', '1.0', '2.0', '0.3', '3e-4', '0.01', '0.8', '1.5')
CONST_VALUES = ('2', '4', '8', '0.5', '0.25', '1.5', '3', '1e-3')
LET_HINTS = ('adv', 'ratio', 'keep', 'w', 's', 'm', 'z', 'h', 'q', 'mask', 'kl', 'base', 'lr', 'd')
UIN_NAMES = {TOK: 'value', SEQ: 'score'}     # declared as `input token value;`, `input seq score;`


def fmt(v):
    """A number as Rein source text (non-negative, short, round-trips)."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def irregular(v):
    """A threshold near v that no structured value (dyadic, small fraction) is likely to hit."""
    v = max(-1e4, min(1e4, v))
    t = round(v, 2) + (0.0073 if v >= 0 else -0.0073)
    return '%.4f' % t


# ---------------------------------------------------------------------------------------------
# intervals

def _ok(lo, hi):
    if lo != lo or hi != hi:
        return -INF, INF
    return lo, hi


def iv_mul(a, b):
    ps = [x * y for x in a for y in b]
    if any(p != p for p in ps):
        return -INF, INF
    return min(ps), max(ps)


def iv_div(a, b):
    if b[0] <= 0.0 <= b[1]:
        return -INF, INF
    return iv_mul(a, (1.0 / b[1], 1.0 / b[0]))


def _mono(f, lo, hi):
    try:
        return _ok(f(lo), f(hi))
    except (OverflowError, ValueError):
        return -INF, INF


def _exp(x):
    if x > 709:
        return INF
    if x == -INF:
        return 0.0
    return math.exp(x)


def _sig(x):
    if x >= 0:
        return 1.0 / (1.0 + _exp(-x))
    e = _exp(x)
    return e / (1.0 + e)


def _softplus(x):
    if x == INF:
        return INF
    if x > 0:
        return x + math.log1p(_exp(-x))
    return math.log1p(_exp(x))


def iv_func(f, a):
    lo, hi = a
    if f == 'exp':
        return _ok(_exp(lo), _exp(hi))
    if f == 'expm1':
        return _ok(_exp(lo) - 1.0, _exp(hi) - 1.0)
    if f == 'log':
        if lo <= 0:
            return -INF, INF
        return _mono(math.log, lo, hi)
    if f == 'log1p':
        if lo <= -1:
            return -INF, INF
        return _mono(math.log1p, lo, hi)
    if f == 'sqrt':
        if lo < 0:
            return -INF, INF
        return _mono(math.sqrt, lo, hi)
    if f == 'abs':
        if lo >= 0:
            return lo, hi
        if hi <= 0:
            return -hi, -lo
        return 0.0, max(-lo, hi)
    if f == 'sign':
        return (-1.0 if lo < 0 else 0.0 if lo == 0 else 1.0), (1.0 if hi > 0 else 0.0 if hi == 0 else -1.0)
    if f == 'sigmoid':
        return _sig(lo), _sig(hi)
    if f == 'softplus':
        return _softplus(lo), _softplus(hi)
    if f == 'tanh':
        return math.tanh(lo) if lo > -INF else -1.0, math.tanh(hi) if hi < INF else 1.0
    raise AssertionError(f)


def iv_pow(a, b, bconst):
    lo, hi = a
    if bconst is not None and bconst == int(bconst):
        k = int(bconst)
        if k < 0 and lo <= 0 <= hi:
            return -INF, INF
        try:
            c = [lo ** k, hi ** k]
        except (OverflowError, ZeroDivisionError):
            return -INF, INF
        if k % 2 == 0 and lo < 0 < hi:
            c.append(0.0)
        return _ok(min(c), max(c))
    if lo <= 0:
        return -INF, INF
    c = []
    for x in (lo, hi):
        for y in b:
            try:
                c.append(_exp(y * math.log(x)))
            except (OverflowError, ValueError):
                return -INF, INF
    return _ok(min(c), max(c))


def bounded(e, m):
    return -m <= e.lo and e.hi <= m


# ---------------------------------------------------------------------------------------------
# checked expressions

class E:
    """An expression: its source text and precedence, and what sema would infer about it."""
    __slots__ = ('s', 'p', 'lv', 'ty', 'lo', 'hi', 't', 'kids', 'tag', 'dep', 'dlp', 'dent', 'fin',
                 'isint', 'const', 'raw', 'nodes')

    def __init__(self, s, p, lv, ty, lo, hi, kids=(), tag=None, dep=False, dlp=False, dent=False,
                 fin=False, isint=False, const=False, raw=None, t=None):
        self.s, self.p, self.lv, self.ty = s, p, lv, ty
        self.lo, self.hi = _ok(lo, hi)
        self.t = _ok(*t) if t is not None else (self.lo, self.hi)   # typical range (thresholds)
        self.kids, self.tag = tuple(kids), tag
        self.dep, self.dlp, self.dent, self.fin = dep, dlp, dent, fin
        self.isint, self.const, self.raw = isint, const, raw
        self.nodes = 1 + sum(k.nodes for k in self.kids)

    @property
    def diff(self):
        return self.dlp or self.dent


def par(e, m):
    return e.s if e.p >= m else '(' + e.s + ')'


def _merge(kids):
    return dict(dep=any(k.dep for k in kids), fin=any(k.fin for k in kids),
                const=all(k.const for k in kids))


def lit(text):
    v = float(text)
    return E(text, 7 if text.startswith('-') else 9, BAT, 'f', v, v, tag=('lit',), const=True,
             isint=v == int(v))


def blit(v):
    return E('true' if v else 'false', 9, BAT, 'b', float(v), float(v), tag=('lit',), const=True,
             isint=True)


def un(op, x):
    if op == 'not':
        assert x.ty == 'b'
        return E('not ' + par(x, 3), 3, x.lv, 'b', 0.0, 1.0, (x,), ('op', 'not'), isint=True,
                 **_merge([x]))
    s = '-' + par(x, 7)
    if s.startswith('--'):
        s = '-(' + x.s + ')'
    return E(s, 7, x.lv, 'f', -x.hi, -x.lo, (x,), ('op', 'neg'), dlp=x.dlp, dent=x.dent,
             isint=x.isint, t=(-x.t[1], -x.t[0]), **_merge([x]))


PREC = {'or': (1, 1, 2), 'and': (2, 2, 3), '+': (5, 5, 6), '-': (5, 5, 6), '*': (6, 6, 7),
        '/': (6, 6, 7), '^': (8, 9, 7)}
CMPS = ('<', '<=', '>', '>=', '==', '!=')


def rng_bi(op, a, b, bconst):
    if op == '+':
        return _ok(a[0] + b[0], a[1] + b[1])
    if op == '-':
        return _ok(a[0] - b[1], a[1] - b[0])
    if op == '*':
        return iv_mul(a, b)
    if op == '/':
        return iv_div(a, b)
    return iv_pow(a, b, bconst)


def rng_call(f, rs):
    if f == 'where':
        return min(rs[1][0], rs[2][0]), max(rs[1][1], rs[2][1])
    if f == 'sg':
        return rs[0]
    if f in ('min', 'max'):
        g = min if f == 'min' else max
        return g(rs[0][0], rs[1][0]), g(rs[0][1], rs[1][1])
    if f == 'clamp':
        x, lo, hi = rs
        return min(max(x[0], lo[0]), hi[0]), min(max(x[1], lo[1]), hi[1])
    if f == 'pow':
        return None
    return iv_func(f, rs[0])


def rng_red(op, x, n, empty):
    lo, hi = x
    if op == 'sum':
        return min(0.0, lo * n), max(0.0, hi * n)
    if op in ('mean', 'max', 'min'):
        return min(0.0, lo), max(0.0, hi)
    if op == 'std':
        return 0.0, hi - lo
    if op == 'var':
        return 0.0, (hi - lo) ** 2 if hi - lo < 1e150 else INF
    if op == 'logsumexp':
        return (-INF if empty else lo), hi + math.log(n)
    if op == 'count':
        return 0.0, float(n)
    return 0.0, float(n - 1)      # rank


def keepgrad(e):
    """keepgrad(e): e itself, said to carry a gradient on purpose."""
    return E('keepgrad(' + e.s + ')', 9, e.lv, e.ty, e.lo, e.hi, (e,), ('fn', 'keepgrad'), dep=e.dep,
             dlp=e.dlp, dent=e.dent, fin=e.fin, isint=e.isint, const=e.const, t=e.t)


def bi(op, a, b):
    if op in '*/' and a.dlp and b.dlp:
        # Both factors depend on logp: the front end warns about such a product when one of them is
        # logp (a forgotten sg on the weight of a score-function term) unless keepgrad says that the
        # gradient through the weight is meant; these programs mean it.
        a, b = keepgrad(a), keepgrad(b)
    if op in CMPS:
        p, pl, pr = 4, 5, 5
    else:
        p, pl, pr = PREC[op]
    s = par(a, pl) + ' ' + op + ' ' + par(b, pr)
    m = _merge([a, b])
    lv = min(a.lv, b.lv)
    if op in ('and', 'or'):
        assert a.ty == 'b' and b.ty == 'b'
        return E(s, p, lv, 'b', 0.0, 1.0, (a, b), ('op', op), isint=True, **m)
    if op in CMPS:
        return E(s, p, lv, 'b', 0.0, 1.0, (a, b), ('op', op), isint=True, **m)
    bc = b.lo if b.const else None
    r = rng_bi(op, (a.lo, a.hi), (b.lo, b.hi), bc)
    t = rng_bi(op, a.t, b.t, bc)
    isint = a.isint and b.isint and op in '+-*'
    return E(s, p, lv, 'f', r[0], r[1], (a, b), ('op', op), dlp=a.dlp or b.dlp,
             dent=a.dent or b.dent, isint=isint, t=t, **m)


def call(f, args):
    s = f + '(' + ', '.join(a.s for a in args) + ')'
    if f == 'uniform':
        return E(s, 9, SEQ, 'f', 0.0, 1.0, (), ('fn', 'uniform'))
    m = _merge(args)
    lv = min(a.lv for a in args)
    dlp = any(a.dlp for a in args)
    dent = any(a.dent for a in args)
    isint = False
    ty = 'f'
    if f == 'pow':
        a, b = args
        bc = b.lo if b.const else None
        r, t = iv_pow((a.lo, a.hi), (b.lo, b.hi), bc), iv_pow(a.t, b.t, bc)
    else:
        r, t = rng_call(f, [(a.lo, a.hi) for a in args]), rng_call(f, [a.t for a in args])
    if f == 'where':
        c, a, b = args
        assert c.ty == 'b'
        ty = 'b' if a.ty == 'b' and b.ty == 'b' else 'f'
        dlp, dent = a.dlp or b.dlp, a.dent or b.dent
        isint = a.isint and b.isint
    elif f == 'sg':
        ty, dlp, dent, isint = args[0].ty, False, False, args[0].isint
    elif f in ('min', 'max'):
        isint = args[0].isint and args[1].isint
    elif f == 'clamp':
        isint = all(a.isint for a in args)
    elif f == 'sign':
        dlp = dent = False
        isint = args[0].isint
    elif f == 'abs':
        isint = args[0].isint
    return E(s, 9, lv, ty, r[0], r[1], args, ('fn', f), dlp=dlp, dent=dent, isint=isint, t=t, **m)


def red(op, R, x=None, filt=None, ddof=None):
    """op[R](x [, filt] [, ddof=d]); count[R]() when x is None."""
    parts = [] if x is None else [x.s]
    if filt is not None:
        parts.append(filt.s)
    if ddof is not None:
        parts.append('ddof=%d' % ddof)
    s = '%s[%s](%s)' % (op, LVN[R], ', '.join(parts))
    kids = [k for k in (x, filt) if k is not None]
    if x is None:
        lo, hi = CNT_RANGE[R]
        return E(s, 9, R, 'f', lo, hi, (), ('red', 'count', R, None, False, None), isint=True,
                 t=CNT_TYP[R])
    El = x.lv
    assert El < R and (filt is None or (filt.ty == 'b' and filt.lv >= El))
    empty = filt is not None or (R, El) not in NONEMPTY
    dep = any(k.dep for k in kids)
    fin = any(k.fin for k in kids) or (R == BAT and dep)
    lv = El if op == 'rank' else R
    dlp = x.dlp and op not in ('count', 'rank')
    dent = x.dent and op not in ('count', 'rank')
    isint = op in ('count', 'rank') or (op in ('sum', 'max', 'min') and x.isint)
    r = rng_red(op, (x.lo, x.hi), NMAX[(R, El)], empty)
    t = rng_red(op, x.t, NTYP[(R, El)], empty)
    return E(s, 9, lv, 'f', r[0], r[1], kids, ('red', op, R, El, filt is not None, ddof), dep=dep,
             dlp=dlp, dent=dent, fin=fin, isint=isint, t=t)


def scan(op, x, gamma=None):
    """cumsum/revcumsum[seq](x [, gamma]) of a token value x, gamma a batch-level constant in
    [0, 1]: |y| <= 64 max|x| over a sequence of at most 64 tokens."""
    assert x.lv == TOK
    s = '%s[seq](%s)' % (op, x.s if gamma is None else x.s + ', ' + gamma.s)
    n = NMAX[(SEQ, TOK)]
    lo, hi = min(0.0, n * x.lo), max(0.0, n * x.hi)
    kids = [x] if gamma is None else [x, gamma]
    return E(s, 9, TOK, 'f', lo, hi, kids, ('red', op, SEQ, TOK, False, None), dep=x.dep,
             dlp=x.dlp, dent=x.dent, fin=x.fin, isint=x.isint and gamma is None,
             t=(min(0.0, 6 * x.t[0]), max(0.0, 6 * x.t[1])))


def ostat(op, R, x, arg=None):
    """median/quantile[R](x [, q]) (a value between x's extremes, 0 when empty) or
    topk/topfrac[R](x, k) (a bool at x's level, like rank: fin over a batch of dep values)."""
    El = x.lv
    assert El < R
    s = '%s[%s](%s)' % (op, LVN[R], x.s if arg is None else x.s + ', ' + arg.s)
    kids = [x] if arg is None else [x, arg]
    fin = x.fin or (R == BAT and x.dep)
    tag = ('red', op, R, El, False, None)
    if op in ('topk', 'topfrac'):
        return E(s, 9, El, 'b', 0.0, 1.0, kids, tag, dep=x.dep, fin=fin, isint=True)
    return E(s, 9, R, 'f', min(0.0, x.lo), max(0.0, x.hi), kids, tag, dep=x.dep, dlp=x.dlp,
             dent=x.dent, fin=fin, isint=False, t=(min(0.0, x.t[0]), max(0.0, x.t[1])))


def minmax(f, a, b):
    """min/max of a and b; when their typical ranges do not meet, one side would always win
    (and the other's gradient be always zero): add them instead."""
    if a.t[1] < b.t[0] or b.t[1] < a.t[0]:
        return bi('+', a, b)
    return call(f, [a, b])


def sat(e, need):
    if need is None:
        return True
    if need == 'lp':
        return e.dlp
    if need == 'ent':
        return e.dent
    return e.diff


# ---------------------------------------------------------------------------------------------
# user fns: templates, built with the raw constructors so they are safe for any argument

def _ph(name):
    return E(name, 9, BAT, 'f', 0.0, 0.0)


def make_fn_templates(r):
    """(kind, nparams, primary argument indices, arg hints, body(args) -> E, returns bool)."""
    c = r.choice(('5', '10', '20'))
    eps = r.choice(('0.25', '1', '0.5'))
    k = r.choice(('0.5', '2', '3'))
    return [
        ('clip', 3, (0,), ('x', 'lo', 'hi'), lambda a: call('min', [call('max', [a[0], a[1]]), a[2]]), False),
        ('k3', 2, (0, 1), ('x', 'x'),
         lambda a: bi('-', bi('-', call('exp', [call('clamp', [bi('-', a[1], a[0]), lit('-' + c), lit(c)])]), lit('1')),
                      bi('-', a[1], a[0])), False),
        ('sq', 1, (0,), ('x',), lambda a: bi('*', a[0], a[0]), False),
        ('lerp', 3, (0, 1), ('x', 'x', 'unit'), lambda a: bi('+', a[0], bi('*', a[2], bi('-', a[1], a[0]))), False),
        ('softclip', 2, (0,), ('x', 'pos'), lambda a: bi('*', a[1], call('tanh', [bi('/', a[0], a[1])])), False),
        ('smooth_abs', 1, (0,), ('x',), lambda a: call('sqrt', [bi('+', bi('*', a[0], a[0]), lit(eps))]), False),
        ('hinge', 2, (0,), ('x', 'x'), lambda a: call('max', [bi('-', a[0], a[1]), lit('0')]), False),
        ('logistic', 2, (0,), ('x', 'scale'), lambda a: call('sigmoid', [bi('*', a[1], a[0])]), False),
        ('lsp', 1, (0,), ('x',), lambda a: call('log', [bi('+', lit('1'), call('exp', [call('clamp', [a[0], lit('-20'), lit('20')])]))]), False),
        ('affine', 3, (0,), ('x', 'x', 'x'), lambda a: bi('+', bi('*', a[1], a[0]), a[2]), False),
        ('pw', 2, (0,), ('x', 'exp'), lambda a: bi('^', bi('+', call('abs', [a[0]]), lit(eps)), a[1]), False),
        ('in_range', 3, (), ('cx', 'lo', 'hi'), lambda a: bi('and', bi('>=', a[0], a[1]), bi('<=', a[0], a[2])), True),
        ('outside', 2, (), ('cx', 'pos'), lambda a: bi('>', call('abs', [a[0]]), a[1]), True),
        ('softsign', 1, (0,), ('x',), lambda a: bi('/', a[0], bi('+', lit('1'), call('abs', [a[0]]))), False),
        ('gate', 2, (0,), ('x', 'cx'), lambda a: call('where', [bi('>', a[1], lit(k)), a[0], bi('*', a[0], lit(k))]), False),
    ]


class Fn:
    def __init__(self, name, kind, nparams, primary, hints, body, isbool, pnames):
        self.name, self.kind, self.nparams, self.primary = name, kind, nparams, primary
        self.hints, self.body, self.isbool, self.pnames = hints, body, isbool, pnames
        self.used = False
        self.defn = body([_ph(p) for p in pnames])


class Let:
    def __init__(self, name, e, keep=1.0):
        self.name, self.e, self.uses = name, e, 0
        self.forced = False
        self.keep = keep      # unused and keep < 0.6: dropped, else turned into a metric

    def ref(self):
        e = self.e
        self.uses += 1
        return E(self.name, 9, e.lv, e.ty, e.lo, e.hi, (), ('let', self.name), dep=e.dep,
                 dlp=e.dlp, dent=e.dent, fin=e.fin, isint=e.isint, const=e.const, t=e.t)


# ---------------------------------------------------------------------------------------------

def forced_keys(seed):
    """The reduction combinations and functions that program i is made to contain: every one of
    them comes round once per len(list) programs (the order is shuffled by the seed)."""
    reds = []
    for op in REDS:
        for R, El in COMBOS:
            if op == 'rank':
                reds.append((op, R, El, False))
            elif op == 'count':
                reds.append((op, R, El, False))
            else:
                reds.append((op, R, El, False))
                reds.append((op, R, El, True))
    reds += [('count', L, None, False) for L in (SEQ, GRP, BAT)]
    fns = list(ALL_FUNCS) + ['^']
    rr = random.Random('rein-backend-gen-keys:%d' % seed)
    rr.shuffle(reds)
    rr.shuffle(fns)
    return reds, fns


_KEYS = {}


class Gen:
    def __init__(self, seed, idx):
        self.r = random.Random('rein-backend-gen:%d:%d' % (seed, idx))
        self.idx = idx
        if seed not in _KEYS:
            _KEYS[seed] = forced_keys(seed)
        reds, fns = _KEYS[seed]
        self.force_red = reds[idx % len(reds)]
        self.force_fn = fns[(idx // 2) % len(fns)]
        r = self.r
        self.safe = r.random() >= 0.1
        # candidate declarations; emitted only if used
        self.consts = [('K%d' % i, r.choice(CONST_VALUES)) for i in range(r.choice((0, 0, 1, 2)))]
        self.params = []
        for i in range(r.choice((0, 1, 1, 2, 2, 3))):
            nm = r.choice(('eps', 'c', 'beta', 'tau', 'coef', 'k')) + str(i)
            if self.consts and r.random() < 0.2:
                kn, kv = r.choice(self.consts)
                d = '%s * %s' % (kn, r.choice(('0.1', '0.25', '0.05')))
                v = float(kv) * float(d.split('* ')[1])
                self.params.append([nm, d, v, False, kn])
            else:
                d = r.choice(PARAM_DEFAULTS)
                self.params.append([nm, d, float(d), False, None])
        self.const_used = [False] * len(self.consts)
        self.uins = []
        for lv in (TOK, SEQ):
            if r.random() < 0.25:
                self.uins.append([UIN_NAMES[lv], lv, False])
        self.fns = []
        if r.random() < 0.35:
            tmpl = make_fn_templates(r)
            for i in range(r.choice((1, 1, 2))):
                kind, n, prim, hints, body, isb = r.choice(tmpl)
                pn = ['%s%d_%d' % ('abc'[j], i, j) for j in range(n)]
                self.fns.append(Fn('%s_%d' % (kind, i), kind, n, prim, hints, body, isb, pn))
        self.lets = []
        self.let_names = set()
        self.hot = 4.0      # weight of a let nothing uses yet, among the leaves

    # ---- small helpers ----
    def w(self, items):
        """Weighted choice from [(weight, value), ...]."""
        tot = sum(wt for wt, _ in items)
        x = self.r.random() * tot
        for wt, v in items:
            x -= wt
            if x < 0:
                return v
        return items[-1][1]

    def split(self, budget, k):
        """Splits budget among k children (each >= 1)."""
        b = max(budget, k)
        cuts = sorted(self.r.randint(0, b - k) for _ in range(k - 1))
        parts, prev = [], 0
        for c in cuts + [b - k]:
            parts.append(c - prev + 1)
            prev = c
        return parts

    def coarser(self, lv, need, nofin):
        """A level for a non-primary operand: lv or coarser."""
        top = GRP if (need and nofin) else BAT
        if lv >= top:
            return lv
        opts = [(3.0, lv)] + [(1.0 if l < BAT else 1.5, l) for l in range(lv + 1, top + 1)]
        return self.w(opts)

    def param_leaf(self):
        return self.param_leaf_named(self.params[self.r.randrange(len(self.params))])

    def param_leaf_named(self, p):
        p[3] = True
        if p[4]:
            self.const_used[[c[0] for c in self.consts].index(p[4])] = True
        return E(p[0], 9, BAT, 'f', p[2], p[2], (), ('param', p[0]))

    def const_leaf(self):
        i = self.r.randrange(len(self.consts))
        self.const_used[i] = True
        v = float(self.consts[i][1])
        return E(self.consts[i][0], 9, BAT, 'f', v, v, (), ('const', self.consts[i][0]), const=True,
                 isint=v == int(v))

    def input_leaf(self, name):
        lv, ty, lo, hi, isint, dlp, dent = INPUTS[name]
        return E(name, 9, lv, ty, lo, hi, (), ('in', name), dep=dlp or dent, dlp=dlp, dent=dent,
                 isint=isint, raw=name, t=INT_TYP.get(name))

    def uin_leaf(self, u):
        u[2] = True
        return E(u[0], 9, u[1], 'f', UIN_RANGE[0], UIN_RANGE[1], (), ('uin', LVN[u[1]], u[0]), raw='uin')

    def leaves(self, lv, ty, need, nodep, nofin):
        """Candidate leaves (weight, thunk) of exactly level lv and type ty."""
        out = []
        if ty == 'f':
            if lv == TOK:
                out += [(3.0, lambda: self.input_leaf('logp')), (1.5, lambda: self.input_leaf('entropy')),
                        (1.5, lambda: self.input_leaf('old_logp')), (1.0, lambda: self.input_leaf('ref_logp')),
                        (0.8, lambda: self.input_leaf('pos'))]
            elif lv == SEQ:
                out += [(3.0, lambda: self.input_leaf('reward')), (0.8, lambda: self.input_leaf('len')),
                        (0.6, lambda: self.input_leaf('lag')), (0.6, lambda: call('uniform', [])),
                        (0.4, lambda: red('count', SEQ))]
            elif lv == GRP:
                out += [(0.5, lambda: red('count', GRP))]
            else:
                out += [(3.0, lambda: lit(self.r.choice(LITERALS))), (0.3, lambda: red('count', BAT))]
                if self.params:
                    out.append((3.0, self.param_leaf))
                if self.consts:
                    out.append((1.0, self.const_leaf))
            for u in self.uins:
                if u[1] == lv:
                    out.append((1.5, lambda u=u: self.uin_leaf(u)))
        else:
            if lv == SEQ:
                out.append((1.0, lambda: self.input_leaf('truncated')))
            if lv == BAT:
                out.append((0.2, lambda: blit(self.r.random() < 0.5)))
        for L in self.lets:
            e = L.e
            if e.lv == lv and e.ty == ty:
                out.append((self.hot if L.uses == 0 else 1.5, L.ref))
        res = []
        for wt, th in out:
            res.append((wt, th))
        # filter by constraints: build lazily, check attributes
        return [(wt, th) for wt, th in res]

    def pick_leaf(self, lv, ty, need, nodep, nofin):
        cands = self.leaves(lv, ty, need, nodep, nofin)
        self.r.shuffle(cands)
        # try in weighted order until one fits
        while cands:
            th = self.w(cands)
            idx = next(i for i, c in enumerate(cands) if c[1] is th)
            cands.pop(idx)
            e = self._peek(th)
            if e is None:
                continue
            if sat(e, need) and not (nodep and e.dep) and not (nofin and e.fin):
                return self._commit(th)
        return None

    def _peek(self, th):
        """Builds a leaf without recording its use (lets and params count uses when committed)."""
        st = self._save()
        e = th()
        self._restore(st)
        return e

    def _commit(self, th):
        return th()

    def _save(self):
        return ([L.uses for L in self.lets], [p[3] for p in self.params], list(self.const_used),
                [u[2] for u in self.uins], self.r.getstate())

    def _restore(self, st):
        for L, u in zip(self.lets, st[0]):
            L.uses = u
        for p, u in zip(self.params, st[1]):
            p[3] = u
        self.const_used = st[2]
        for u, v in zip(self.uins, st[3]):
            u[2] = v
        self.r.setstate(st[4])

    def has_leaf(self, lv, ty, need, nodep, nofin):
        for _, th in self.leaves(lv, ty, need, nodep, nofin):
            e = self._peek(th)
            if sat(e, need) and not (nodep and e.dep) and not (nofin and e.fin):
                return True
        return False

    # ---- guards ----
    def skip_guard(self, x):
        """In unguarded programs, most guards on simple (exact, rounding-free) arguments go."""
        if self.safe or x.const:
            return False
        simple = x.raw is not None or x.isint or x.nodes <= 2
        return self.r.random() < (0.9 if simple else 0.3)

    def fit(self, e):
        """Keeps a float's magnitude moderate (conservative intervals)."""
        m = 1e6 if self.safe else 1e12
        if e.ty != 'f' or bounded(e, m):
            return e
        L = self.r.choice(('100', '1000', '1e4'))
        if self.r.random() < 0.7:
            return call('clamp', [e, lit('-' + L), lit(L)])
        return bi('*', call('tanh', [bi('/', e, lit(L))]), lit(L))

    def g_exp_arg(self, x):
        m = 20.0 if self.safe else 30.0
        if bounded(x, m):
            return x
        # bounds that do not cut off the typical values (a saturated guard has no gradient)
        los = [c for c in ('-20', '-10', '-5') if float(c) <= x.t[0]] or ['-20']
        his = [c for c in ('5', '10', '20') if float(c) >= x.t[1]] or ['20']
        k = self.w([(3, 'clamp'), (1, 'tanh'), (1, 'negabs'), (1, 'min')])
        if k == 'min' and x.lo >= -100:
            return call('min', [x, lit(self.r.choice(his))])
        if k == 'negabs' and x.lo >= -100 and x.hi <= 100:
            return un('neg', call('abs', [x]))
        if k == 'tanh':
            c = self.r.choice(('5', '10', '20'))
            return bi('*', lit(c), call('tanh', [bi('/', x, lit(c))]))
        return call('clamp', [x, lit(self.r.choice(los)), lit(self.r.choice(his))])

    def g_positive(self, x, lo_ok, allow_sigmoid=True):
        """A strictly positive (>= about 0.1) version of x."""
        if x.lo >= lo_ok:
            return x
        opts = [(3, 'abs'), (2, 'softplus'), (1, 'sq')]
        if allow_sigmoid and x.lo >= -20:
            opts.append((1, 'sigmoid'))
        if x.lo >= 0:
            opts.append((3, 'shift'))
        k = self.w(opts)
        if k == 'abs':
            return bi('+', call('abs', [x]), lit(self.r.choice(('0.5', '1', '0.25'))))
        if k == 'softplus':
            return bi('+', call('softplus', [x]), lit(self.r.choice(('0.1', '0.5', '1'))))
        if k == 'sq' and bounded(x, 1e3) and x.nodes <= 3:
            return bi('+', bi('*', x, x), lit(self.r.choice(('0.5', '1'))))
        if k == 'sigmoid':
            return bi('+', call('sigmoid', [x]), lit(self.r.choice(('0.1', '0.5'))))
        if k == 'shift':
            return bi('+', x, lit(self.r.choice(('0.5', '1', '0.25'))))
        return bi('+', call('abs', [x]), lit('0.5'))

    def where_guard(self, f, x):
        """where(x > t, f(x), alt): the unselected branch may be NaN/inf, its gradient is zero."""
        t = self.r.choice(('0.0137', '0.1137', '0.2573', '0.5113'))
        alt = lit(self.r.choice(('0', '1', '0.5'))) if self.r.random() < 0.7 else un('neg', lit('1'))
        e = call('where', [bi('>', x, lit(t)), call(f, [x]), alt])
        dom = iv_func(f, (float(t), max(float(t), x.hi)))     # only x > t is ever selected
        e.lo, e.hi = _ok(min(dom[0], alt.lo), max(dom[1], alt.hi))
        e.t = (max(e.lo, e.t[0]), min(e.hi, e.t[1])) if e.t[0] < e.t[1] else (e.lo, e.hi)
        return e

    def mk_func1(self, f, x):
        if f in ('exp', 'expm1'):
            return call(f, [self.g_exp_arg(x)])
        if f == 'log':
            if x.lo >= 0.01 or self.skip_guard(x):
                return call('log', [x])
            if x.nodes <= 3 and x.t[1] > 1.0 and self.r.random() < 0.3:
                return self.where_guard('log', x)
            return call('log', [self.g_positive(x, 0.01)])
        if f == 'sqrt':
            if x.lo >= 0.01 or self.skip_guard(x):
                return call('sqrt', [x])
            if x.nodes <= 3 and x.t[1] > 1.0 and self.r.random() < 0.3:
                return self.where_guard('sqrt', x)
            return call('sqrt', [self.g_positive(x, 0.01)])
        if f == 'log1p':
            if x.lo >= -0.9 or self.skip_guard(x):
                return call('log1p', [x])
            k = self.w([(3, 'abs'), (1, 'sigmoid'), (1, 'softplus'), (1, 'sq')])
            if k == 'sq' and bounded(x, 1e3) and x.nodes <= 3:
                return call('log1p', [bi('*', x, x)])
            if k == 'sigmoid':
                return call('log1p', [call('sigmoid', [x])])
            if k == 'softplus':
                return call('log1p', [call('softplus', [x])])
            return call('log1p', [call('abs', [x])])
        return call(f, [x])

    def mk_div(self, a, b):
        if b.lo >= 0.25 or b.hi <= -0.25 or self.skip_guard(b):
            return bi('/', a, b)
        k = self.w([(3, 'abs'), (1, 'sq'), (1, 'softplus'), (2, 'max')] + ([(3, 'shift')] if b.lo >= 0 else []))
        if k == 'sq' and bounded(b, 1e3) and b.nodes <= 3:
            d = bi('+', bi('*', b, b), lit(self.r.choice(('0.5', '1'))))
        elif k == 'softplus':
            d = bi('+', lit('1'), call('softplus', [b]))
        elif k == 'max' and (b.isint or b.lo >= 0):
            d = call('max', [b, lit(self.r.choice(('1', '0.5')))])
        elif k == 'shift':
            d = bi('+', b, lit(self.r.choice(('1', '0.5'))))
        else:
            d = bi('+', lit('1'), call('abs', [b]))
        return bi('/', a, d)

    def mk_pow(self, base, lv, budget, need, nodep, nofin, style):
        r = self.r
        if r.random() < 0.75:
            ex = lit(r.choice(('2', '2', '3', '0.5', '1.5', '-1', '-0.5', '2.5', '0.25')))
        else:
            ex = self.gen(self.coarser(lv, None, nofin), max(1, budget), None, nodep, nofin)
            if not bounded(ex, 2.5):
                ex = call('clamp', [ex, lit('-2'), lit('2')]) if r.random() < 0.5 else \
                    bi('*', lit('2'), call('tanh', [ex]))
        intexp = ex.const and ex.lo == int(ex.lo) and ex.lo >= 0
        if intexp:
            if not bounded(base, 1e3):
                base = call('clamp', [base, lit('-100'), lit('100')])
        elif base.lo < 0.1 and not self.skip_guard(base):
            base = self.g_positive(base, 0.1)
        if not intexp and base.hi > 100:
            base = call('min', [base, lit('100')])
        if style == '^':
            return bi('^', base, ex)
        return call('pow', [base, ex])

    # ---- float expressions ----
    def gen(self, lv, budget, need=None, nodep=False, nofin=True):
        """A float expression of exactly level lv."""
        assert not (need and nodep)
        assert not (need and nofin and lv == BAT)
        r = self.r
        if budget <= 1 and not (lv == GRP and r.random() < 0.7):  # group leaves: only counts
            e = self.pick_leaf(lv, 'f', need, nodep, nofin)
            if e is not None:
                return e
        prods = [(3.0 if budget > 2 else 8.0, 'leaf'), (0.5, 'neg'), (4.0, 'arith'), (0.8, 'pow'),
                 (3.0, 'func1'), (1.0, 'minmax'), (0.7, 'clamp'), (1.0, 'where')]
        if need is None:
            prods += [(0.5, 'sg'), (0.5, 'boolnum')]
            if lv < BAT:
                prods.append((0.7, 'rank'))
            if lv > TOK:
                prods.append((0.7, 'count'))
        if lv > TOK:
            prods.append((3.5 if budget > 1 else 20.0, 'red'))
            prods.append((0.6, 'ostat'))
        else:
            prods.append((0.6, 'scan'))
        if self.fns and any(not f.isbool for f in self.fns):
            prods.append((1.2, 'fncall'))
        mix = self.mix_lets(lv, nodep, nofin)
        if mix and budget >= 2:
            prods.append((2.5 if any(L.uses == 0 for L in mix) else 0.6, 'letmix'))
        if budget <= 1 and lv > TOK:
            prods = [(1.0, 'red')]
        for _ in range(20):
            k = self.w(prods)
            if k == 'leaf':
                e = self.pick_leaf(lv, 'f', need, nodep, nofin)
                if e is None:
                    continue
                return e
            e = getattr(self, 'p_' + k)(lv, budget, need, nodep, nofin)
            if e is not None and sat(e, need):
                return self.fit(e)
        # fallback: a plain differentiable reduction / input
        return self.fallback(lv, need, nodep, nofin)

    def fallback(self, lv, need, nodep, nofin):
        if lv == TOK:
            if need == 'ent':
                return self.input_leaf('entropy')
            if need:
                return self.input_leaf('logp')
            return self.input_leaf('old_logp' if nodep else 'logp')
        x = self.fallback(TOK, need, nodep or (lv == BAT and nofin), nofin)
        return red('mean', lv, x)

    def operands(self, lv, budget, k, need, nodep, nofin, prim=None):
        """k float operands: one (prim, or random) at exactly lv; need goes to a random operand
        (one at lv when the others are batch-level and batch cannot carry it)."""
        r = self.r
        parts = self.split(budget, k)
        if prim is None:
            prim = r.randrange(k)
        levels = [lv if i == prim else self.coarser(lv, need, nofin) for i in range(k)]
        needi = None
        if need:
            okk = [i for i in range(k) if not (nofin and levels[i] == BAT)]
            needi = r.choice(okk)
        return [self.gen(levels[i], parts[i], need if i == needi else None, nodep, nofin)
                for i in range(k)]

    def mix_lets(self, lv, nodep, nofin):
        """Float lets coarser than lv that may be broadcast into a level-lv expression."""
        return [L for L in self.lets if L.e.ty == 'f' and L.e.lv > lv and not (nodep and L.e.dep)
                and not (nofin and L.e.fin)]

    def p_letmix(self, lv, budget, need, nodep, nofin):
        """A level-lv expression combined with a coarser let (a seq/group value used per token)."""
        mix = self.mix_lets(lv, nodep, nofin)
        L = self.w([(self.hot if L.uses == 0 else 1.0, L) for L in mix])
        x = self.gen(lv, budget - 2, need, nodep, nofin)
        k = self.w([(3, '*'), (2, '+'), (2, '-'), (1, 'where'), (1, 'minmax')])
        if k == 'where':
            c = self.gen_bool(lv, 2, nodep, nofin)
            return call('where', [c, x, L.ref()] if self.r.random() < 0.5 else [c, L.ref(), x])
        if k == 'minmax':
            return minmax(self.r.choice(('min', 'max')), x, L.ref())
        return bi(k, x, L.ref()) if self.r.random() < 0.5 else bi(k, L.ref(), x)

    def p_neg(self, lv, budget, need, nodep, nofin):
        return un('neg', self.gen(lv, budget - 1, need, nodep, nofin))

    def p_arith(self, lv, budget, need, nodep, nofin):
        op = self.w([(3, '+'), (2.5, '-'), (3, '*'), (2, '/')])
        a, b = self.operands(lv, budget - 1, 2, need, nodep, nofin)
        if a.s == b.s and op in '-/':      # x - x, x / x: nothing left to test
            op = '+' if op == '-' else '*'
        if op == '/':
            return self.mk_div(a, b)
        return bi(op, a, b)

    def p_boolnum(self, lv, budget, need, nodep, nofin):
        """A bool used as a number (0/1)."""
        pb, pf = self.split(budget - 1, 2)
        if self.r.random() < 0.5:
            c = self.gen_bool(lv, pb, nodep, nofin)
            x = self.gen(self.coarser(lv, None, nofin), pf, None, nodep, nofin)
        else:
            x = self.gen(lv, pf, None, nodep, nofin)
            c = self.gen_bool(self.coarser(lv, None, nofin), pb, nodep, nofin)
        op = self.w([(3, '*'), (1, '+'), (1, '-')])
        return bi(op, x, c) if self.r.random() < 0.5 else bi(op, c, x)

    def p_pow(self, lv, budget, need, nodep, nofin):
        b1, b2 = self.split(budget - 1, 2)
        base = self.gen(lv, b1, need, nodep, nofin)
        return self.mk_pow(base, lv, b2, need, nodep, nofin, '^' if self.r.random() < 0.5 else 'pow')

    def p_func1(self, lv, budget, need, nodep, nofin):
        u = 1.0 if self.safe else 2.5      # unguarded programs: more functions with a domain
        fs = [(1.5, 'exp'), (2 * u, 'log'), (1.5 * u, 'log1p'), (1.5, 'expm1'), (1.2 * u, 'sqrt'),
              (1.2, 'abs'), (1.2, 'sigmoid'), (1, 'softplus'), (1.5, 'tanh')]
        if need is None:
            fs.append((2, 'sign'))
        f = self.w(fs)
        x = self.gen(lv, budget - 1, need, nodep, nofin)
        return self.mk_func1(f, x)

    def p_minmax(self, lv, budget, need, nodep, nofin):
        a, b = self.operands(lv, budget - 1, 2, need, nodep, nofin)
        return minmax(self.r.choice(('min', 'max')), a, b)

    def p_clamp(self, lv, budget, need, nodep, nofin):
        r = self.r
        x = self.gen(lv, max(1, budget - 3), need, nodep, nofin)
        k = self.w([(3, 'lits'), (2, 'param'), (1, 'expr')])
        lo = None
        if k == 'param' and self.params and x.t[0] < 1 < x.t[1]:    # a band around 1 (PPO)
            p = self.param_leaf()
            lo, hi = bi('-', lit('1'), p), bi('+', lit('1'), p)
        elif k == 'expr':
            lo = self.gen(self.coarser(lv, None, nofin), 1, None, nodep, nofin)
            hi = bi('+', lo, lit(r.choice(('1', '2', '0.5'))))
            if not (lo.t[1] > x.t[0] and hi.t[0] < x.t[1]):   # never active: use literals
                lo = None
        if lo is None:   # bounds inside x's range, so that the clamp is active sometimes
            lo_, hi_ = max(x.t[0], -5.0), min(x.t[1], 5.0)
            if not lo_ < hi_:
                lo_, hi_ = -1.0, 1.0
            a = lo_ + (hi_ - lo_) * r.uniform(0.05, 0.4)
            b = lo_ + (hi_ - lo_) * r.uniform(0.6, 0.95)
            lo, hi = lit(irregular(a)), lit(irregular(max(b, a + 0.1)))
        return call('clamp', [x, lo, hi])

    def p_where(self, lv, budget, need, nodep, nofin):
        r = self.r
        pc, pa, pb = self.split(budget - 1, 3)
        prim = r.randrange(3)
        lvs = [lv if i == prim else self.coarser(lv, need if i else None, nofin) for i in range(3)]
        c = self.gen_bool(lvs[0], pc, nodep, nofin)
        needi = None
        if need:
            okk = [i for i in (1, 2) if not (nofin and lvs[i] == BAT)]
            if not okk:
                lvs[1] = lv
                okk = [1]
            needi = r.choice(okk)
        a = self.gen(lvs[1], pa, need if needi == 1 else None, nodep, nofin)
        b = self.gen(lvs[2], pb, need if needi == 2 else None, nodep, nofin)
        return call('where', [c, a, b])

    def p_sg(self, lv, budget, need, nodep, nofin):
        return call('sg', [self.gen(lv, budget - 1, None, nodep, nofin)])

    def p_red(self, lv, budget, need, nodep, nofin):
        r = self.r
        R = lv
        El = r.randrange(R)
        xnodep = nodep or (R == BAT and nofin)
        if need and xnodep:
            return None
        op = self.w([(3, 'sum'), (3, 'mean'), (1.5, 'max'), (1.5, 'min'), (1.5, 'std'), (1.2, 'var'),
                     (1.2, 'logsumexp')])
        filt = None
        bx = budget - 1
        if r.random() < 0.35:
            bx, bf = self.split(budget - 1, 2)
            fl = El if r.random() < 0.65 else r.randint(El, min(BAT, R + (1 if r.random() < 0.1 else 0)))
            filt = self.filter(fl, bf, xnodep, nofin)
        if need is None and r.random() < 0.12:
            x = self.gen_bool(El, bx, xnodep, nofin)
        else:
            x = self.gen(El, bx, need, xnodep, nofin)
        ddof = None
        if op in ('std', 'var') and r.random() < 0.5:
            ddof = 1 if r.random() < 0.7 else 0
        e = red(op, R, x, filt, ddof)
        if op == 'logsumexp' and e.lo == -INF and not self.skip_guard(x):
            e = call('max', [e, lit(r.choice(('-20', '-10', '-30')))])
        return e

    def p_rank(self, lv, budget, need, nodep, nofin):
        R = self.r.randint(lv + 1, BAT)
        xnodep = nodep or (R == BAT and nofin)
        if self.r.random() < 0.1:
            x = self.gen_bool(lv, budget - 1, xnodep, nofin)
        else:
            x = self.gen(lv, budget - 1, None, xnodep, nofin)
        return red('rank', R, x)

    def p_scan(self, lv, budget, need, nodep, nofin):
        """cumsum/revcumsum[seq] of a token value, sometimes discounted by a literal in (0, 1]."""
        r = self.r
        x = self.gen(TOK, budget - 1, need, nodep, nofin)
        gamma = lit(r.choice(('0.5', '0.9', '0.99', '1'))) if r.random() < 0.5 else None
        return scan(r.choice(('cumsum', 'revcumsum')), x, gamma)

    def p_ostat(self, lv, budget, need, nodep, nofin):
        """median/quantile[lv] of a finer value (q a literal in [0, 1])."""
        r = self.r
        El = r.randrange(lv)
        x = self.gen(El, budget - 1, need, nodep or (lv == BAT and nofin), nofin)
        if r.random() < 0.4:
            return ostat('median', lv, x)
        return ostat('quantile', lv, x, lit(r.choice(('0', '0.1', '0.25', '0.75', '0.9', '1'))))

    def p_topsel(self, lv, budget, nodep, nofin):
        """topk/topfrac[R](x, k) at x's level lv: a bool selector."""
        r = self.r
        if lv == BAT:
            return None
        R = r.randint(lv + 1, BAT)
        x = self.gen(lv, max(1, budget - 1), None, nodep or (R == BAT and nofin), nofin)
        if r.random() < 0.5:
            return ostat('topk', R, x, lit(r.choice(('0', '1', '2', '3'))))
        return ostat('topfrac', R, x, lit(r.choice(('0.25', '0.5', '0.3', '1'))))

    def p_count(self, lv, budget, need, nodep, nofin):
        if self.r.random() < 0.3:
            return red('count', lv)
        El = self.r.randrange(lv)
        c = self.gen_bool(El, budget - 1, nodep or (lv == BAT and nofin), nofin)
        return red('count', lv, c)

    def p_fncall(self, lv, budget, need, nodep, nofin):
        fns = [f for f in self.fns if not f.isbool and (need is None or f.primary)]
        if not fns:
            return None
        f = self.r.choice(fns)
        return self.fn_call(f, lv, budget, need, nodep, nofin)

    def fn_arg(self, hint, lv, budget, need, nodep, nofin):
        r = self.r
        if hint in ('x', 'cx'):
            return self.gen(lv, budget, need, nodep, nofin)
        if hint == 'pos':
            if self.params and r.random() < 0.4:
                return bi('+', self.param_leaf(), lit('0.5'))
            return lit(r.choice(('0.5', '1', '2', '3')))
        if hint == 'unit':
            if r.random() < 0.5:
                return lit(r.choice(('0.25', '0.5', '0.9')))
            return call('sigmoid', [self.gen(lv, budget, None, nodep, nofin)])
        if hint == 'scale':
            return lit(r.choice(('0.5', '2', '4', '1')))
        if hint == 'exp':
            return lit(r.choice(('2', '0.5', '1.5', '-1')))
        if hint == 'lo':
            if self.params and r.random() < 0.5:
                return bi('-', lit('1'), self.param_leaf())
            return lit(r.choice(('-1', '-0.5', '0', '0.5')))
        if hint == 'hi':
            if self.params and r.random() < 0.5:
                return bi('+', lit('1'), self.param_leaf())
            return lit(r.choice(('1', '1.5', '2')))
        raise AssertionError(hint)

    def fn_call(self, f, lv, budget, need, nodep, nofin):
        r = self.r
        xs = [i for i, h in enumerate(f.hints) if h in ('x', 'cx')]
        prim = r.choice(list(f.primary) if (need and f.primary) else xs)
        parts = self.split(budget - 1, len(xs))
        args = []
        for i, h in enumerate(f.hints):
            if h in ('x', 'cx'):
                b = parts[xs.index(i)]
                alv = lv if i == prim else self.coarser(lv, None, nofin)
                args.append(self.fn_arg(h, alv, b, need if i == prim else None, nodep, nofin))
            else:
                args.append(self.fn_arg(h, lv, 1, None, nodep, nofin))
        # the inlined value decides levels, types, dependences and the interval
        body = f.body(args)
        if min(a.lv for a in args) != lv:
            return None
        f.used = True
        s = f.name + '(' + ', '.join(a.s for a in args) + ')'
        return E(s, 9, body.lv, body.ty, body.lo, body.hi, args, ('call', f.kind, f.name), dep=body.dep,
                 dlp=body.dlp, dent=body.dent, fin=body.fin, isint=body.isint, const=body.const,
                 t=body.t)

    # ---- integer-valued expressions (safe for == and !=) ----
    def gen_int(self, lv, budget, nodep, nofin):
        r = self.r
        leaves = []
        if lv == TOK:
            leaves.append((2, lambda: self.input_leaf('pos')))
        elif lv == SEQ:
            leaves += [(2, lambda: self.input_leaf('len')), (1.5, lambda: self.input_leaf('lag')),
                       (0.7, lambda: red('count', SEQ))]
        elif lv == GRP:
            leaves.append((1, lambda: red('count', GRP)))
        else:
            leaves += [(2, lambda: lit(r.choice(('0', '1', '2', '3', '4')))), (1, lambda: red('count', BAT))]
        for L in self.lets:
            if L.e.lv == lv and L.e.ty == 'f' and L.e.isint and not (nodep and L.e.dep) and not (nofin and L.e.fin):
                leaves.append((3, L.ref))
        prods = [(4 if budget <= 2 else 1.5, 'leaf'), (1, 'arith'), (1.5, 'rank'), (0.3, 'abs'), (0.4, 'minmax')]
        if lv > TOK:
            prods += [(1.5, 'count'), (0.8, 'sumint')]
        k = self.w(prods)
        if k == 'leaf' or budget <= 1:
            return self.w(leaves)()
        if k == 'arith':
            a = self.gen_int(lv, budget // 2, nodep, nofin)
            b = self.gen_int(self.coarser(lv, None, nofin), max(1, budget // 2 - 1), nodep, nofin)
            return bi(self.w([(3, '+'), (3, '-'), (1, '*')]), a, b)
        if k == 'abs':
            return call('abs', [bi('-', self.gen_int(lv, budget - 2, nodep, nofin), lit(r.choice(('1', '2', '3'))))])
        if k == 'minmax':
            return call(r.choice(('min', 'max')), [self.gen_int(lv, budget - 2, nodep, nofin),
                                                  lit(r.choice(('1', '2', '4')))])
        if k == 'rank':
            R = r.randint(lv + 1, BAT) if lv < BAT else None
            if R is None:
                return self.w(leaves)()
            x = self.gen(lv, budget - 1, None, nodep or (R == BAT and nofin), nofin)
            return red('rank', R, x)
        if k == 'count':
            El = r.randrange(lv)
            return red('count', lv, self.gen_bool(El, budget - 1, nodep or (lv == BAT and nofin), nofin))
        El = r.randrange(lv)
        x = self.gen_int(El, budget - 1, nodep or (lv == BAT and nofin), nofin)
        return red(r.choice(('sum', 'max', 'min')), lv, x)

    # ---- bools ----
    def gen_bool(self, lv, budget, nodep=False, nofin=True):
        """A bool of exactly level lv; a compile-time constant only rarely."""
        for _ in range(4):
            e = self._gen_bool(lv, budget, nodep, nofin)
            if not e.const or self.r.random() < 0.05:
                return e
        return e

    def _gen_bool(self, lv, budget, nodep, nofin):
        r = self.r
        if budget <= 2:
            prods = [(5.0, 'cmp'), (2.0, 'leaf'), (0.3, 'not'), (0.5, 'topsel')]
        else:
            prods = [(5.0, 'cmp'), (0.8, 'not'), (1.5, 'andor'), (0.3, 'where'), (0.3, 'sg'), (0.8, 'leaf'),
                     (0.5, 'topsel')]
            if any(f.isbool for f in self.fns):
                prods.append((1.0, 'fncall'))
        for _ in range(20):
            k = self.w(prods)
            if k == 'leaf':
                e = self.pick_leaf(lv, 'b', None, nodep, nofin)
                if e is not None:
                    return e
                continue
            if k == 'cmp':
                return self.gen_cmp(lv, budget, nodep, nofin)
            if k == 'topsel':
                e = self.p_topsel(lv, budget, nodep, nofin)
                if e is not None:
                    return e
                continue
            if k == 'not':
                return un('not', self._gen_bool(lv, min(budget - 1, 2), nodep, nofin))
            if k == 'andor':
                b1, b2 = self.split(budget - 1, 2)
                a = self._gen_bool(lv, b1, nodep, nofin)
                b = self._gen_bool(self.coarser(lv, None, nofin), b2, nodep, nofin)
                if r.random() < 0.5:
                    a, b = b, a
                return bi(r.choice(('and', 'or')), a, b)
            if k == 'where':
                c = self._gen_bool(lv, 2, nodep, nofin)
                return call('where', [c, self._gen_bool(self.coarser(lv, None, nofin), 1, nodep, nofin),
                                      self._gen_bool(self.coarser(lv, None, nofin), 1, nodep, nofin)])
            if k == 'sg':
                return call('sg', [self._gen_bool(lv, budget - 1, nodep, nofin)])
            if k == 'fncall':
                f = r.choice([f for f in self.fns if f.isbool])
                e = self.fn_call(f, lv, budget, None, nodep, nofin)
                if e is not None:
                    return e
        return self.gen_cmp(lv, budget, nodep, nofin)

    def filter(self, lv, budget, nodep, nofin):
        """A reduction filter: often a plain input-against-threshold test, which keeps a fair
        share of the elements (a filter that is never true would make the reduction trivial)."""
        raws = self.raw_inputs(lv, nodep)
        if self.r.random() < 0.55 and (raws or lv <= SEQ):
            return self.gen_cmp(lv, 1, nodep, nofin, simple=True)
        return self.gen_bool(lv, budget, nodep, nofin)

    def int_threshold(self, x):
        """An integer (or half-integer) inside the typical range of integer-valued x."""
        lo, hi = x.t
        lo, hi = max(lo, -50.0), min(hi, 50.0)
        if not lo < hi:
            return lit(fmt(max(0.0, round(lo))))
        v = lo + (hi - lo) * self.r.uniform(0.2, 0.6)
        v = math.floor(v) + (0.5 if self.r.random() < 0.3 else 0.0)
        return lit(fmt(v)) if v >= 0 else lit('-' + fmt(-v))

    def raw_inputs(self, lv, nodep):
        out = []
        if lv == TOK:
            out += ['logp', 'entropy', 'old_logp', 'ref_logp']
            if nodep:
                out = ['old_logp', 'ref_logp']
        elif lv == SEQ:
            out += ['reward', 'uniform']
        for u in self.uins:
            if u[1] == lv:
                out.append(u)
        return out

    def raw_leaf(self, x):
        if x == 'uniform':
            return call('uniform', [])
        if isinstance(x, list):
            return self.uin_leaf(x)
        return self.input_leaf(x)

    def dyadic_for(self, e):
        key = e.raw if e.raw in DYADIC else ('uniform' if e.tag == ('fn', 'uniform') else 'uin')
        return lit(self.r.choice(DYADIC[key]))

    def gen_cmp(self, lv, budget, nodep, nofin, simple=False):
        r = self.r
        raws = self.raw_inputs(lv, nodep)
        cats = [] if simple else [(3, 'computed'), (2, 'int')]
        if raws:
            cats += [(4, 'raw_const'), (1.5, 'raw_raw')]
        if lv <= SEQ:
            cats.append((1.2, 'int_input'))
        if budget >= 4:
            cats.append((0.4, 'boolbool'))
        k = self.w(cats)
        ordered = ('<', '<=', '>', '>=')
        if k == 'raw_const':
            a = self.raw_leaf(r.choice(raws))
            t = self.dyadic_for(a)
            op = r.choice(ordered) if r.random() < 0.95 else r.choice(('==', '!='))
            return bi(op, a, t) if r.random() < 0.8 else bi(op, t, a)
        if k == 'raw_raw':
            a = self.raw_leaf(r.choice(raws))
            olv = self.coarser(lv, None, nofin)
            others = self.raw_inputs(olv, nodep) or raws
            b = self.raw_leaf(r.choice(others))
            if a.s == b.s:
                b = self.dyadic_for(a)
            return bi(r.choice(ordered), a, b)
        if k == 'int_input':
            name = r.choice(('pos',) if lv == TOK else ('len', 'lag'))
            a = self.input_leaf(name)
            t = lit(str(r.choice(INT_THRESH[name])))
            return bi(r.choice(CMPS), a, t)
        if k == 'int':
            a = self.gen_int(lv, max(1, budget - 2), nodep, nofin)
            if r.random() < 0.6:
                b = self.int_threshold(a)
            else:
                b = self.gen_int(self.coarser(lv, None, nofin), max(1, budget // 3), nodep, nofin)
            if a.s == b.s:
                b = self.int_threshold(a)
            return bi(r.choice(CMPS), a, b)
        if k == 'boolbool':
            a = self._gen_bool(lv, 2, nodep, nofin)
            b = self._gen_bool(self.coarser(lv, None, nofin), 2, nodep, nofin)
            if a.s == b.s:
                b = un('not', b)
            return bi(r.choice(('==', '!=')), a, b)
        # a computed float against an irregular threshold or a param
        x = self.gen(lv, max(1, budget - 2), None, nodep, nofin)
        t = None
        if self.params and r.random() < 0.3:   # a param threshold, where it splits x's values
            p = self.params[r.randrange(len(self.params))]
            v = p[2]
            lo, hi = x.t
            opts = [(c, f) for c, f in ((v, 'p'), (1 + v, '1+p'), (1 - v, '1-p'), (-v, '-p'))
                    if lo + 0.2 * (hi - lo) < c < hi - 0.2 * (hi - lo)]
            if opts and p[0] not in x.s:
                f = r.choice(opts)[1]
                pl = self.param_leaf_named(p)
                t = {'p': pl, '1+p': bi('+', lit('1'), pl), '1-p': bi('-', lit('1'), pl),
                     '-p': un('neg', pl)}[f]
        if t is not None:
            pass
        elif x.isint:   # exact either way
            t = self.int_threshold(x)
        else:
            lo, hi = x.t
            if not (math.isfinite(lo) and math.isfinite(hi)):
                lo, hi = max(lo, -3.0), min(hi, 3.0)
                if lo > hi:
                    lo, hi = hi - 1, hi
            u = r.uniform(0.25, 0.75)
            v = lo + (hi - lo) * u
            s = irregular(v)
            t = lit(s) if not s.startswith('-') else lit(s)
        op = r.choice(ordered)
        return bi(op, x, t) if r.random() < 0.8 else bi(op, t, x)

    # ---- statements ----
    def new_let_name(self):
        while True:
            nm = '%s%d' % (self.r.choice(LET_HINTS), len(self.lets))
            if nm not in self.let_names:
                self.let_names.add(nm)
                return nm

    def gen_let(self, budget):
        r = self.r
        lv = self.w([(4, TOK), (3, SEQ), (1.5, GRP), (1, BAT)])
        ty = 'b' if r.random() < 0.2 else 'f'
        nofin = r.random() < 0.85
        budget = max(budget, 2)
        for _ in range(4):      # not a bare name: that let would only rename something
            if ty == 'b':
                e = self.gen_bool(lv, budget, False, nofin)
            else:
                need = None
                if r.random() < 0.45 and not (lv == BAT and nofin):
                    need = self.w([(3, 'lp'), (1, 'ent'), (1, 'any')])
                nodep = need is None and r.random() < 0.3
                e = self.gen(lv, budget, need, nodep, nofin)
            if e.nodes > 1:
                break
        if e.const:      # a constant let would be folded away; give it some data
            e = bi('*', e, self.input_leaf('reward'))
        L = Let(self.new_let_name(), e, self.r.random())
        self.lets.append(L)
        return L

    def add_let(self, hint, e, lo=None, hi=None):
        if lo is not None:
            e.lo, e.hi = lo, hi
            e.t = (lo, hi)
        nm = '%s%d' % (hint, len(self.lets))
        self.let_names.add(nm)
        L = Let(nm, e, self.r.random())
        self.lets.append(L)
        return L

    def eps_param(self):
        if not self.params:
            self.params.append(['eps', '0.2', 0.2, False, None])
        return self.param_leaf()

    def motifs(self):
        """Lets in the shape of the standard objectives (advantages, ratios, KL, clipping masks)."""
        r = self.r
        rw = lambda: self.input_leaf('reward')
        lp, olp = (lambda: self.input_leaf('logp')), (lambda: self.input_leaf('old_logp'))
        picks = r.sample(('adv', 'advz', 'ratio', 'sratio', 'gspo', 'k3', 'ppo', 'keep', 'drop', 'tokmean'),
                         r.choice((1, 1, 2)))
        adv = ratio = None
        if any(k in picks for k in ('adv', 'advz', 'ppo', 'keep')):
            if 'advz' in picks or r.random() < 0.3:
                z = bi('/', bi('-', rw(), red('mean', GRP, rw())), bi('+', red('std', GRP, rw()), lit('1e-6')))
                adv = self.add_let('adv', z, -4.0, 4.0)
            else:
                adv = self.add_let('adv', bi('-', rw(), red('mean', GRP, rw())))
        if any(k in picks for k in ('ratio', 'sratio', 'ppo', 'keep')):
            e = call('exp', [bi('-', lp(), olp())])
            if 'sratio' in picks or ('keep' in picks and 'ppo' not in picks):
                e = call('sg', [e])
            ratio = self.add_let('ratio', e)
        if 'gspo' in picks:
            self.add_let('s', call('exp', [red('mean', SEQ, bi('-', lp(), olp()))]))
        if 'k3' in picks:
            d = lambda: bi('-', self.input_leaf('ref_logp'), lp())
            self.add_let('kl', bi('-', bi('-', call('exp', [d()]), lit('1')), d()))
        if 'ppo' in picks:
            eps = self.eps_param()
            cl = call('clamp', [ratio.ref(), bi('-', lit('1'), eps), bi('+', lit('1'), eps)])
            self.add_let('surr', call('min', [bi('*', ratio.ref(), adv.ref()), bi('*', cl, adv.ref())]))
        if 'keep' in picks:
            eps = self.eps_param()
            a = bi('and', bi('>=', adv.ref(), lit('0')), bi('<=', ratio.ref(), bi('+', lit('1'), eps)))
            b = bi('and', bi('<=', adv.ref(), lit('0')), bi('>=', ratio.ref(), bi('-', lit('1'), eps)))
            self.add_let('keep', bi('or', a, b))
        if 'drop' in picks:
            pm = self.add_let('good', bi('>=', rw(), red('mean', GRP, rw())))
            npos = self.add_let('npos', red('count', GRP, pm.ref()))
            rk = red('rank', GRP, call('where', [pm.ref(), lit('2'), call('uniform', [])]))
            self.add_let('keep', bi('or', pm.ref(), bi('<', rk, npos.ref())))
        if 'tokmean' in picks:
            self.add_let('tm', red(r.choice(('mean', 'sum', 'max')), SEQ, r.choice((lp, lambda: self.input_leaf('entropy')))()))
        for L in self.lets:
            L.uses = 0

    def forced(self):
        """Adds this program's forced reduction and function (see forced_keys), as lets or metrics."""
        r = self.r
        op, R, El, hasf = self.force_red
        self.forced_metrics = []
        if El is None:
            e = red('count', R)
            if R == BAT:
                self.forced_metrics.append(bi('/', red('sum', BAT, self.input_leaf('len')), e))
            else:
                x = bi('*', e, self.input_leaf('reward')) if R == SEQ else \
                    bi('-', red('mean', GRP, self.input_leaf('reward')), e)
                self.add_let(r.choice(LET_HINTS), x).forced = True
        else:
            as_metric = R == BAT and r.random() < 0.7
            nofin = not as_metric
            nodep = R == BAT and nofin
            need = None
            if not nodep and op not in ('count', 'rank') and r.random() < 0.6:
                need = self.w([(3, 'lp'), (1, 'ent')])
            filt = None
            if hasf:
                filt = self.gen_bool(El if r.random() < 0.7 else r.randint(El, R), 2, nodep, nofin)
            if op == 'count':
                e = red('count', R, self.gen_bool(El, 2, nodep, nofin))
            else:
                x = self.gen(El, 2, need, nodep, nofin)
                ddof = None
                if op in ('std', 'var') and r.random() < 0.5:
                    ddof = 1 if r.random() < 0.6 else 0
                e = red(op, R, x, filt, ddof)
                if op == 'logsumexp' and e.lo == -INF and not self.skip_guard(x):
                    e = call('max', [e, lit(r.choice(('-20', '-30')))])
            if as_metric:
                self.forced_metrics.append(e if e.lv == BAT else red('mean', BAT, e))
            else:
                self.add_let(r.choice(LET_HINTS), e).forced = True
        f = self.force_fn
        if self.idx % 2:
            for L in self.lets:
                L.uses = 0
            return
        lv = self.w([(3, TOK), (2, SEQ), (1, GRP)])
        if f == 'uniform':
            lv = min(lv, SEQ)
        need = self.w([(2, None), (2, 'lp'), (1, 'ent')]) if f not in ('sg', 'sign', 'uniform') else None
        for _ in range(10):
            if f in FUNCS1:
                e = self.mk_func1(f, self.gen(lv, 2, need, False, True))
            elif f in ('min', 'max'):
                e = call(f, self.operands(lv, 2, 2, need, False, True))
            elif f == 'clamp':
                e = self.p_clamp(lv, 4, need, False, True)
            elif f in ('pow', '^'):
                e = self.mk_pow(self.gen(lv, 2, need, False, True), lv, 1, need, False, True, f)
            elif f == 'where':
                e = self.p_where(lv, 4, need, False, True)
            elif f == 'sg':
                e = self.p_sg(lv, 3, None, False, True)
            else:
                e = bi(r.choice(('*', '-', '+')), call('uniform', []), self.gen(lv, 2, None, False, True))
            if sat(e, need) and e.lv == lv:
                break
        self.add_let(r.choice(LET_HINTS), self.fit(e)).forced = True
        for L in self.lets:
            L.uses = 0

    def hazard(self):
        """A value that is inf or NaN for some inputs, exactly (no rounding decides where)."""
        r = self.r
        raw = lambda names: self.input_leaf(r.choice(names))
        k = r.choice(('log', 'sqrt', 'div', 'log1p', 'pow', 'lse', 'loglen'))
        if k == 'log':
            return call('log', [raw(('logp', 'reward', 'old_logp'))])
        if k == 'sqrt':
            return call('sqrt', [raw(('reward', 'ref_logp'))])
        if k == 'div':
            return bi('/', raw(('reward', 'entropy', 'logp')), raw(('len', 'pos', 'lag')))
        if k == 'log1p':
            return call('log1p', [raw(('logp', 'old_logp'))])
        if k == 'pow':
            return call('pow', [raw(('reward', 'logp')), lit(r.choice(('0.5', '-0.5', '1.5')))])
        if k == 'lse':
            x = raw(('logp', 'entropy'))
            return red('logsumexp', SEQ, x, self.gen_cmp(TOK, 1, False, True, simple=True)
                       if r.random() < 0.5 else None)
        return call('log', [raw(('len', 'lag'))])

    def nodep_batch(self, budget):
        """A batch value that does not depend on logp/entropy (a loss coefficient)."""
        k = self.w([(3, 'param'), (2, 'lit'), (2, 'expr')])
        if k == 'param' and self.params:
            return self.param_leaf()
        if k == 'expr':
            return self.gen(BAT, budget, None, True, True)
        return lit(self.r.choice(LITERALS))

    def normaliser(self):
        r = self.r
        k = self.w([(3, 'cnt'), (2, 'toks'), (1, 'cntf'), (1, 'expr')])
        if k == 'cnt':
            return red('count', BAT)
        if k == 'toks':
            s = red('sum', BAT, self.input_leaf('len'))
            if self.skip_guard(s):
                return s
            return call('max', [s, lit('1')]) if r.random() < 0.5 else bi('+', s, lit('1'))
        if k == 'cntf':
            El = r.choice((SEQ, GRP)) if r.random() < 0.5 else TOK
            c = red('count', BAT, self.gen_bool(El, 2, True, True))
            return bi('+', c, lit('1'))
        return self.gen(BAT, 3, None, True, True)

    def loss_term(self, need, budget):
        """A batch value linear in logp/entropy-dependent batch reductions."""
        r = self.r
        xl = self.w([(5, TOK), (3.5, SEQ), (1.5, GRP)])
        form = self.w([(4.5, 'mean'), (3, 'sumn'), (1, 'sum')])
        bx = budget
        filt = None
        if r.random() < 0.3:
            bx, bf = self.split(budget, 2)
            fl = xl if r.random() < 0.6 else r.randint(xl, BAT)
            filt = self.filter(fl, bf, form == 'mean', True)
        x = self.gen(xl, bx, need, False, True)
        t = red('mean' if form == 'mean' else 'sum', BAT, x, filt)
        if form == 'sumn':
            t = self.mk_div(t, self.normaliser())
        k = self.w([(4, 'plain'), (2, 'coef'), (1, 'div'), (0.5, 'where')])
        if k == 'coef':
            c = self.nodep_batch(2)
            t = bi('*', c, t) if r.random() < 0.5 else bi('*', t, c)
        elif k == 'div':
            t = self.mk_div(t, self.g_positive(self.nodep_batch(2), 0.25))
        elif k == 'where':
            c = self.gen_bool(BAT, 3, True, True)
            if c.const:
                c = bi(r.choice(('<', '>')), red('mean', BAT, self.input_leaf('reward')),
                       lit(r.choice(DYADIC['reward'])))
            other = self.loss_term(None, 2) if r.random() < 0.5 else lit('0')
            t = call('where', [c, t, other] if r.random() < 0.5 else [c, other, t])
        return t

    def gen_loss(self, budget):
        r = self.r
        n = self.w([(5.5, 1), (3.5, 2), (1, 3)])
        parts = self.split(budget, n)
        needs = [self.w([(7, 'lp'), (1.5, 'ent'), (1.5, 'any')])]
        needs += [self.w([(4, None), (3, 'ent'), (3, 'lp')]) for _ in range(n - 1)]
        self.hot = 25.0     # the loss should use the lets (motifs, forced reductions)
        terms = [self.loss_term(nd, b) for nd, b in zip(needs, parts)]
        self.hot = 4.0
        if r.random() < 0.1:    # a term without gradient, that may need the whole batch
            e = self.gen(BAT, 3, None, False, False)
            if e.diff:
                e = call('sg', [e])
            terms.append(bi('*', lit(r.choice(('0.5', '0.1', '1'))), e) if r.random() < 0.5 else e)
        loss = terms[0] if r.random() < 0.5 else un('neg', terms[0])
        for t in terms[1:]:
            loss = bi(r.choice(('+', '-')), loss, t)
        assert loss.diff and loss.lv == BAT and loss.ty == 'f'
        return loss

    def gen_metric(self, budget):
        for _ in range(6):
            e = self._gen_metric(max(budget, 2))
            if not e.const and e.nodes > 1 and '[' in e.s:   # reads the batch, not only params
                return e
        return red('mean', BAT, self.input_leaf('entropy'))

    def _gen_metric(self, budget):
        r = self.r
        if r.random() < 0.6:
            op = self.w([(3, 'mean'), (2, 'sum'), (1, 'max'), (1, 'min'), (1.2, 'std'), (1, 'var'),
                         (1, 'logsumexp'), (1, 'count')])
            El = self.w([(4, TOK), (3, SEQ), (1.5, GRP)])
            filt = None
            if op == 'count':
                return red('count', BAT, self.gen_bool(El, budget, False, False))
            if r.random() < 0.3:
                bx, bf = self.split(budget, 2)
                filt = self.gen_bool(r.randint(El, BAT) if r.random() < 0.3 else El, bf, False, False)
            else:
                bx = budget
            x = self.gen(El, bx, None, False, False)
            ddof = (1 if r.random() < 0.6 else 0) if op in ('std', 'var') and r.random() < 0.5 else None
            e = red(op, BAT, x, filt, ddof)
            if op == 'logsumexp' and e.lo == -INF and not self.skip_guard(x):
                e = call('max', [e, lit('-30')])
            return e
        return self.gen(BAT, budget, None, False, False)

    def program(self):
        r = self.r
        total = r.randint(2, 7)
        if r.random() < 0.25:
            self.motifs()
        self.forced()
        nlets = self.w([(3, 0), (3, 1), (1.5, 2), (0.5, 3)])
        nmet = self.w([(2, 0), (3, 1), (2, 2), (0.5, 3)])
        budget_loss = max(2, int(total * r.uniform(0.3, 0.6)))
        rest = max(nlets + nmet, total - budget_loss)
        parts = self.split(rest, nlets + nmet) if nlets + nmet else []
        for i in range(nlets):
            self.gen_let(parts[i])
        loss = self.gen_loss(budget_loss)
        metrics = []
        for i in range(nmet):
            metrics.append(('stat%d' % i, self.gen_metric(parts[nlets + i])))
        for e in self.forced_metrics:
            metrics.append(('stat%d' % len(metrics), e))
        if not self.safe:       # an unguarded program gets at least one inf/NaN hazard
            h = self.hazard()
            if r.random() < 0.5:
                t = red('mean', BAT, bi('*', self.input_leaf(r.choice(('logp', 'entropy'))), h))
                loss = bi(r.choice(('+', '-')), loss, t)
            else:
                metrics.append(('hazard', red('mean', BAT, h) if h.lv < BAT else h))
        # a let that nothing refers to is dropped (most random ones, to keep programs small) or
        # becomes a metric (forced ones, for coverage): no `unused let` warning either way
        while True:
            refs = Counter()
            for e in [L.e for L in self.lets] + [loss] + [e for _, e in metrics]:
                names_used(e, refs)
            drop = [L for L in self.lets if not refs[('let', L.name)] and not L.forced and L.keep < 0.6]
            if not drop:
                break
            self.lets = [L for L in self.lets if L not in drop]
        for L in self.lets:
            if refs[('let', L.name)]:
                continue
            ref = L.ref()
            if ref.lv < BAT:
                e = red('mean', BAT, ref)
            elif ref.ty == 'b':
                e = call('where', [ref, lit('1'), lit('0')])
            else:
                e = ref
            metrics.append(('u_' + L.name, e))
        return self.render(loss, metrics)

    def render(self, loss, metrics):
        self.roots = [L.e for L in self.lets] + [loss] + [e for _, e in metrics]
        self.loss = loss
        self.metrics = metrics
        # what is declared is what the final program refers to
        refs = Counter()
        for e in self.roots:
            names_used(e, refs)
        used_fns = [f for f in self.fns if refs[('call', f.name)]]
        self.fn_roots = [f.defn for f in used_fns]
        for e in self.fn_roots:
            names_used(e, refs)
        used_params = [p for p in self.params if refs[('param', p[0])]]
        for p in used_params:
            if p[4]:
                refs[('const', p[4])] += 1
        self.used_params = used_params
        self.used_consts = [c for c in self.consts if refs[('const', c[0])]]
        self.used_uins = [u for u in self.uins if refs[('uin', u[0])]]
        self.used_fns = used_fns
        out = ['# generated by tests/backend/gen_programs.py (program %d)' % self.idx,
               '# mode: %s' % ('guarded' if self.safe else 'unguarded'),
               'objective p%04d "random objective %d";' % (self.idx, self.idx)]
        for n, v in self.used_consts:
            out.append('const %s = %s;' % (n, v))
        for p in used_params:
            out.append('param %s = %s;' % (p[0], p[1]))
        for u in self.used_uins:
            out.append('input %s %s;' % (LVN[u[1]], u[0]))
        for f in used_fns:
            out.append('fn %s(%s) = %s;' % (f.name, ', '.join(f.pnames), f.defn.s))
        for L in self.lets:
            out.append('let %s = %s;' % (L.name, L.e.s))
        out.append('loss = %s;' % loss.s)
        for n, e in metrics:
            out.append('metric %s = %s;' % (n, e.s))
        return '\n'.join(out) + '\n'


def names_used(e, refs):
    """Counts the declared names (lets, params, consts, user inputs, fns) that tree e refers to."""
    t = e.tag
    if t:
        if t[0] in ('let', 'param', 'const'):
            refs[(t[0], t[1])] += 1
        elif t[0] == 'uin':
            refs[('uin', t[2])] += 1
        elif t[0] == 'call':
            refs[('call', t[2])] += 1
    for k in e.kids:
        names_used(k, refs)


# ---------------------------------------------------------------------------------------------
# coverage

def walk(e, cov):
    t = e.tag
    if t:
        kind = t[0]
        if kind == 'fn':
            cov['fn:' + t[1]] += 1
        elif kind == 'op':
            cov['op:' + t[1]] += 1
        elif kind == 'in':
            cov['in:' + t[1]] += 1
        elif kind == 'uin':
            cov['input decl:' + t[1]] += 1
        elif kind == 'red':
            _, op, R, El, hasf, ddof = t
            if El is None:
                cov['red:%s[%s]()' % (op, LVN[R])] += 1
            else:
                cov['red:%s[%s<-%s]%s' % (op, LVN[R], LVN[El], '+filter' if hasf else '')] += 1
                if op in ('std', 'var'):
                    cov['ddof:%s %s' % (op, 'none' if ddof is None else ddof)] += 1
        elif kind == 'call':
            cov['fn call:' + t[1]] += 1
        elif kind == 'param':
            cov['param use'] += 1
        elif kind == 'let':
            cov['let use'] += 1
    for k in e.kids:
        walk(k, cov)


def walk_uses(e, cov):
    """Counts let uses at a finer level than the let (broadcast of a reused value)."""
    for k in e.kids:
        if k.tag and k.tag[0] == 'let' and k.lv > e.lv and not (e.tag and e.tag[0] == 'red'):
            cov['reuse: let broadcast to a finer level'] += 1
        walk_uses(k, cov)


def expected_keys():
    keys = ['fn:' + f for f in ALL_FUNCS] + ['op:' + o for o in ALL_OPS]
    keys += ['in:' + i for i in INPUTS]
    for op in REDS:
        for R, El in COMBOS:
            base = 'red:%s[%s<-%s]' % (op, LVN[R], LVN[El])
            keys.append(base)
            if op not in ('rank', 'count'):
                keys.append(base + '+filter')
    keys += ['red:count[%s]()' % LVN[L] for L in (SEQ, GRP, BAT)]
    keys += ['red:%s[seq<-token]' % op for op in ('cumsum', 'revcumsum')]
    keys += ['red:%s[%s<-%s]' % (op, LVN[R], LVN[El]) for op in ('median', 'quantile', 'topk', 'topfrac')
             for R, El in COMBOS]
    keys += ['ddof:%s %s' % (op, d) for op in ('std', 'var') for d in ('none', 0, 1)]
    keys += ['input decl:token', 'input decl:seq']
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--count', type=int, required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--rein', help='run `REIN check` on every program (self-check)')
    ap.add_argument('--quiet', action='store_true', help='no coverage summary')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    cov = Counter()
    stats = Counter()
    sizes = []
    files = []
    for i in range(a.count):
        g = Gen(a.seed, i)
        text = g.program()
        path = os.path.join(a.out, 'p%04d.rein' % i)
        with open(path, 'w') as f:
            f.write(text)
        files.append(path)
        for e in g.roots + g.fn_roots:
            walk(e, cov)
        for e in g.roots:
            walk_uses(e, cov)
        n = sum(e.nodes for e in g.roots)
        sizes.append(n)
        stats['programs'] += 1
        stats['guarded' if g.safe else 'unguarded'] += 1
        stats['loss d/dlogp'] += g.loss.dlp
        stats['loss d/dentropy'] += g.loss.dent
        stats['lets'] += len(g.lets)
        stats['metrics'] += len(g.metrics)
        stats['programs with >= 2 metrics'] += len(g.metrics) >= 2
        stats['params declared'] += len(g.used_params)
        stats['programs with params'] += bool(g.used_params)
        stats['consts declared'] += len(g.used_consts)
        stats['fns declared'] += len(g.used_fns)
        stats['programs with user inputs'] += bool(g.used_uins)
        stats['programs with a fin metric'] += any(e.fin for _, e in g.metrics)
        stats['programs with a fin (no-grad) loss term'] += g.loss.fin
        for L in g.lets:
            stats['lets at %s' % LVN[L.e.lv]] += 1
    dt = time.time() - t0

    if not a.quiet:
        err = sys.stderr
        print('generated %d programs (seed %d) in %.2f s' % (a.count, a.seed, dt), file=err)
        for k in sorted(stats):
            print('  %-45s %d' % (k, stats[k]), file=err)
        if sizes:
            ss = sorted(sizes)
            print('  nodes per program: min %d, median %d, p90 %d, max %d' %
                  (ss[0], ss[len(ss) // 2], ss[int(len(ss) * 0.9)], ss[-1]), file=err)
        print('coverage (occurrences over all programs):', file=err)
        exp = expected_keys()
        groups = [('functions', 'fn:'), ('operators', 'op:'), ('inputs', 'in:'), ('user inputs', 'input decl:'),
                  ('reductions', 'red:'), ('ddof', 'ddof:'), ('fn calls', 'fn call:')]
        for title, pre in groups:
            keys = sorted(set([k for k in cov if k.startswith(pre)] + [k for k in exp if k.startswith(pre)]))
            print('  %s:' % title, file=err)
            line = []
            for k in keys:
                line.append('%s=%d' % (k[len(pre):], cov[k]))
            for j in range(0, len(line), 6):
                print('    ' + '  '.join(line[j:j + 6]), file=err)
        for k in ('param use', 'let use', 'reuse: let broadcast to a finer level'):
            print('  %-45s %d' % (k, cov[k]), file=err)
        gaps = [k for k in exp if cov[k] == 0]
        print('GAPS (never generated): %s' % (', '.join(gaps) if gaps else 'none'), file=err)

    if a.rein:
        bad = []
        for path in files:
            p = subprocess.run([a.rein, 'check', path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0 or p.stdout.strip():
                bad.append((path, p.returncode, p.stdout.decode(errors='replace')))
        if bad:
            for path, rc, out in bad:
                print('FAIL %s (exit %d)\n%s' % (path, rc, out), file=sys.stderr)
            print('%d of %d programs failed `rein check`' % (len(bad), len(files)), file=sys.stderr)
            sys.exit(1)
        print('all %d programs pass `rein check`' % len(files), file=sys.stderr)


if __name__ == '__main__':
    main()
