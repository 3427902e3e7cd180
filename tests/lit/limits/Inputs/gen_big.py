"""Writes a valid Rein program of about 1.1 MB to stdout (for tests/lit/limits/big_program.rein).

Every declaration kind appears many times and every name is used, so `rein check` must accept the
program without a single diagnostic.  The loss depends on logp outside sg().
"""
import sys

TARGET = 1_100_000  # bytes; a little over 1 MB

out = ['objective big "generated: %d bytes of lets, fns, params, consts and metrics";' % TARGET]
out.append("input seq score;")
out.append("input token value;")
out.append("fn clip1(x, lo, hi) = min(max(x, lo), hi);")
out.append("let a0 = reward - mean[group](reward);")
out.append("let t0 = sg(exp(logp - old_logp));")
size = sum(len(s) + 1 for s in out)
i = 0
metrics = 0
while size < TARGET:
    i += 1
    k = i % 8
    if k == 0:
        stmts = [f"param p{i} = {i % 7} * 0.125 + 0.5;",
                 f"let a{i} = a{i - 1} * p{i} + score;"]
    elif k == 1:
        stmts = [f"const c{i} = {i} / ({i} + 1) + 2 ^ -3;",
                 f"let a{i} = clip1(a{i - 1}, -c{i}, c{i}) + count[group](reward > {i % 5}) * 0.01;"]
    elif k == 2:
        stmts = [f"fn f{i}(x, y) = where(x > y, x - y, (y - x) / 2) + abs(x) * 0.5;",
                 f"let a{i} = f{i}(a{i - 1}, std[group](reward, ddof=1)) / (1 + len);"]
    elif k == 3:
        stmts = [f"let t{i} = clamp(t{i - 8 if i > 8 else 0} * 0.99 + pos * 0.0001, 0.8, 1.2);",
                 f"let a{i} = a{i - 1} + mean[seq](t{i} * value, pos < {i % 50 + 1}) * 0.001;"]
    elif k == 4:
        stmts = [f"let m{i} = (a{i - 1} >= 0 and not truncated) or rank[group](reward) < 2;",
                 f"let a{i} = where(m{i}, a{i - 1}, -a{i - 1} * 0.5);"]
    elif k == 5:
        stmts = [f"let a{i} = tanh(a{i - 1}) + logsumexp[group](reward - lag * 0.01, truncated == false) * 0.001;"]
    elif k == 6:
        stmts = [f"metric mt{i} = mean[batch](a{i - 1}) + var[batch](score) + max[batch](len) - min[batch](reward);",
                 f"let a{i} = a{i - 1} - sum[group](reward) / (count[group]() + 1);"]
        metrics += 1
    else:
        stmts = [f"let a{i} = sigmoid(a{i - 1}) * softplus(sqrt(abs(score)) + log1p(abs(reward)))"
                 f" + expm1(-1) * sign(lag) + pow(2, -1) * uniform();   # comment {i}"]
    for s in stmts:
        out.append(s)
        size += len(s) + 1

last_t = max(j for j in range(i + 1) if j % 8 == 3 or j == 0)
out.append(f"loss = -mean[batch](a{i} * t{last_t} * logp) - 0.001 * mean[batch](entropy)"
           f" + 0.01 * mean[batch](sum[seq](logp - ref_logp));")
out.append(f"metric n_stmts = {len(out) + 1};")
sys.stdout.write("\n".join(out) + "\n")
