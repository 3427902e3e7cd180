#!/usr/bin/env python3
"""check_deps.py — the architecture, checked on the built object files.

Reads the static libraries of the build with `nm` and builds the graph "object file A uses a
symbol that object file B defines".  Two rules of the design card are then checked:

  1. no two files depend on each other in a cycle (no strongly connected component of more than
     one object file), inside a library or across libraries;
  2. each library uses only the libraries below it in the layering given on the command line
     (--layers common:objective:tfm:train — later names may use earlier ones, never the reverse;
     libraries on one level, written a,b, may not use each other).

Usage: check_deps.py --nm NM --layers L1:L2:... NAME=LIB.a ...
Exit 0 when both rules hold; otherwise each violation is printed and the exit status is 1.
"""
import argparse
import subprocess
import sys


def read_lib(nm, path):
    """{object: (defined symbols, undefined symbols)} of static library PATH."""
    out = subprocess.run([nm, "-A", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    und = subprocess.run([nm, "-A", "--undefined-only", path], capture_output=True, text=True, check=True).stdout
    objs = {}
    for text, kind in ((out, 0), (und, 1)):
        for line in text.splitlines():
            # libfoo.a:bar.c.o:0000000000000000 T name   or   libfoo.a:bar.c.o:                 U name
            head, _, rest = line.rpartition(":")
            obj = head.split(":")[-1]
            parts = rest.split()
            if len(parts) < 2:
                continue
            typ, name = parts[-2], parts[-1]
            d = objs.setdefault(obj, (set(), set()))
            if kind == 0 and typ.isupper() and typ not in "UVW":
                d[0].add(name)
            elif kind == 0 and typ in "VW":
                pass  # weak definitions (inline functions emitted out of line) define nothing unique
            elif kind == 1:
                d[1].add(name)
    return objs


def sccs(nodes, edges):
    """Tarjan's strongly connected components, iteratively."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1
                    stack.append(w); on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nm", default="nm")
    ap.add_argument("--layers", required=True)
    ap.add_argument("libs", nargs="+", help="NAME=PATH.a")
    a = ap.parse_args()
    level = {}
    for i, group in enumerate(a.layers.split(":")):
        for name in group.split(","):
            level[name] = i
    files = {}    # (lib, obj) -> (defs, undefs)
    for spec in a.libs:
        name, _, path = spec.partition("=")
        if name not in level:
            sys.exit(f"check_deps: library {name} is not in --layers")
        for obj, d in read_lib(a.nm, path).items():
            files[(name, obj)] = d
    owner = {}
    for key, (defs, _) in files.items():
        for s in defs:
            owner.setdefault(s, key)
    edges, why = {}, {}
    for key, (_, undefs) in files.items():
        for s in undefs:
            dst = owner.get(s)
            if dst and dst != key:
                edges.setdefault(key, set()).add(dst)
                why.setdefault((key, dst), s)
    bad = 0
    for comp in sccs(sorted(files), edges):
        if len(comp) > 1:
            bad += 1
            names = sorted(f"{l}/{o}" for l, o in comp)
            print("cycle:", " <-> ".join(names))
            for x in comp:
                for y in comp:
                    if (x, y) in why:
                        print(f"    {x[0]}/{x[1]} uses {why[(x, y)]} of {y[0]}/{y[1]}")
    for (src, dst), sym in sorted(why.items()):
        if src[0] != dst[0] and level[dst[0]] >= level[src[0]]:
            bad += 1
            print(f"layering: {src[0]}/{src[1]} uses {sym} of {dst[0]}/{dst[1]} "
                  f"({dst[0]} is not below {src[0]})")
    nobj = len(files)
    print(f"check_deps: {nobj} object files, {sum(len(v) for v in edges.values())} dependencies, "
          f"{bad} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
