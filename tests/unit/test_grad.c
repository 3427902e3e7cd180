/* test_grad.c — gradients and micro-batching of the middle end, checked in-process.
 *
 *  1. Finite differences: for a program per op / reduction / level combination, on seeded random
 *     ragged batches (zero-length sequences, one-sequence groups, a group of equal rewards), the
 *     interpreter's d loss/d logp and d loss/d entropy equal central differences of its loss
 *     (h = 1e-6, float64) within 1e-6 absolute + 1e-5 relative.
 *  2. Micro-batch equivalence: loss, metrics and gradients are the same (1e-12 relative) whether
 *     the batch is evaluated whole or in micro-batches of 1, 2 or 3 whole groups.
 *  3. Exact cases: where() gives exactly 0 (not NaN) on the unselected branch even when it is
 *     Inf/NaN; max/min (element-wise and reductions) send the gradient to the first
 *     arg-extremum on ties; rank, count, comparisons, sign, sg and uniform pass no gradient; the
 *     scans' gradients; median/quantile/topk on ties (by position) and quantile's weights;
 *     floor, ceil and topk pass no gradient.
 *  4. Determinism: two evaluations are bit-identical.
 *
 * Exit status 0 when every check passes; each failure is printed with program, batch and token.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "frontend.h"
#include "interp.h"
#include "pipeline.h"

static int failures, checks;

typedef struct {
  FeUnit u;
  IrGraph *g;
  Plan *p;
  double *params;
} Prog;

static bool compile(const char *src, Prog *P) {
  Diag d;
  diag_init(&d, stderr);
  memset(P, 0, sizeof *P);
  if (!fe_check_buffer(&d, "test.rein", src, strlen(src), &P->u)) return false;
  d.file = P->u.file;
  PipeOptions o = {NULL, stdout, false};
  P->g = pipe_run(&P->u.prog, NULL, &d, &o, &P->p);
  if (!P->g) return false;
  P->params = calloc((size_t)P->g->nparams + 1, sizeof(double));
  for (int i = 0; i < P->g->nparams; i++) P->params[i] = P->g->params[i].value;
  return true;
}

static void release(Prog *P) {
  pl_free(P->p);
  ir_free(P->g);
  fe_free(&P->u);
  free(P->params);
}

/* xorshift64*: the tests' own seeded generator */
static uint64_t rng_state;
static double urand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/* A random ragged batch: 1-4 groups of 1-4 sequences of 0-5 tokens; batch 0 of every seed also
 * forces a zero-length sequence, a one-sequence group and a group whose rewards are all equal. */
static Batch *random_batch(uint64_t seed) {
  rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
  int ng = 1 + (int)(urand() * 4), nseq[8], lens[64], ns = 0;
  for (int g = 0; g < ng; g++) {
    nseq[g] = 1 + (int)(urand() * 4);
    for (int s = 0; s < nseq[g]; s++) lens[ns++] = (int)(urand() * 6);
  }
  if (seed % 3 == 0) {
    nseq[ng] = 1, lens[ns++] = 3, ng++;                  /* one-sequence group */
    nseq[ng] = 3, lens[ns++] = 0, lens[ns++] = 2, lens[ns++] = 4, ng++; /* empty sequence */
  }
  Level lv[1] = {LV_TOKEN};
  Batch *b = bt_alloc(ng, nseq, lens, 1, lv);
  for (int t = 0; t < b->ntoks; t++) {
    b->in[IN_LOGP][t] = -0.05 - 2.5 * urand();
    b->in[IN_OLD_LOGP][t] = b->in[IN_LOGP][t] + 0.8 * (urand() - 0.5);
    b->in[IN_REF_LOGP][t] = -0.05 - 2.5 * urand();
    b->in[IN_ENTROPY][t] = 0.1 + 2 * urand();
    b->in[IN_ROLLOUT_LOGP][t] = b->in[IN_OLD_LOGP][t] - 0.4 * sin(1.7 * t);   /* no draw: the stream stays */
    b->uin[0][t] = urand();
  }
  for (int s = 0; s < b->nseqs; s++) {
    b->in[IN_REWARD][s] = urand() < 0.5 ? 1.0 : urand();
    b->in[IN_TRUNCATED][s] = urand() < 0.3;
    b->in[IN_LAG][s] = (int)(urand() * 4);
  }
  if (seed % 3 == 0) /* the last group: equal rewards */
    for (int s = b->grp_seq[ng - 1]; s < b->nseqs; s++) b->in[IN_REWARD][s] = 0.5;
  b->seed = seed;
  b->step = 7;
  return b;
}

static double loss_at(Prog *P, Batch *b) {
  ItResult r;
  it_eval(P->p, b, P->params, 0, &r);
  double v = r.loss;
  it_result_free(&r);
  return v;
}

static void fd_check(const char *name, Prog *P, Batch *b, uint64_t seed) {
  ItResult r;
  it_eval(P->p, b, P->params, 0, &r);
  const int which[2] = {IN_LOGP, IN_ENTROPY};
  for (int k = 0; k < IR_NGRADS; k++) {
    double *x = b->in[which[k]];
    for (int t = 0; t < b->ntoks; t++) {
      double x0 = x[t], h = 1e-6;
      x[t] = x0 + h;
      double lp = loss_at(P, b);
      x[t] = x0 - h;
      double lm = loss_at(P, b);
      x[t] = x0;
      double fd = (lp - lm) / (2 * h), an = r.grad[k][t];
      checks++;
      if (!(fabs(fd - an) <= 1e-6 + 1e-5 * fabs(fd))) {
        failures++;
        printf("FAIL fd %s: seed %llu, d/d%s token %d: analytic %.12g, finite difference %.12g\n",
               name, (unsigned long long)seed, k ? "entropy" : "logp", t, an, fd);
      }
    }
  }
  it_result_free(&r);
}

static bool close_rel(double a, double b, double tol) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= tol * (1 + fabs(b));
}

static void micro_check(const char *name, Prog *P, Batch *b, uint64_t seed) {
  ItResult w, w2;
  it_eval(P->p, b, P->params, 0, &w);
  it_eval(P->p, b, P->params, 0, &w2);
  checks++;
  bool same = memcmp(&w.loss, &w2.loss, sizeof w.loss) == 0;
  for (int k = 0; k < IR_NGRADS; k++)
    same = same && memcmp(w.grad[k], w2.grad[k], sizeof(double) * (size_t)b->ntoks) == 0;
  if (!same) {
    failures++;
    printf("FAIL determinism %s: seed %llu\n", name, (unsigned long long)seed);
  }
  it_result_free(&w2);
  for (int mg = 1; mg <= 3; mg++) {
    ItResult m;
    it_eval(P->p, b, P->params, mg, &m);
    checks++;
    bool ok = close_rel(m.loss, w.loss, 1e-12);
    for (int i = 0; i < w.nmetrics; i++) ok = ok && close_rel(m.metrics[i], w.metrics[i], 1e-12);
    for (int k = 0; k < IR_NGRADS; k++)
      for (int t = 0; t < b->ntoks; t++) ok = ok && close_rel(m.grad[k][t], w.grad[k][t], 1e-12);
    if (!ok) {
      failures++;
      printf("FAIL micro-batch %s: seed %llu, micro-batches of %d groups differ from the whole batch "
             "(loss %.17g vs %.17g)\n", name, (unsigned long long)seed, mg, m.loss, w.loss);
    }
    it_result_free(&m);
  }
  it_result_free(&w);
}

/* Programs: each exercises one op or reduction (and its level) in a loss that depends on it
 * smoothly at the random points.  `seqv` and `grpv` are token values reduced and reused. */
static const char *const fd_programs[][2] = {
    {"neg", "loss = mean[batch](-logp * entropy);"},
    {"add_sub", "loss = mean[batch]((logp + entropy) * (logp - 2 * entropy));"},
    {"mul_div", "loss = mean[batch](logp * old_logp / entropy);"},
    {"pow_base", "loss = mean[batch]((-logp) ^ 1.7);"},
    {"pow_exp", "loss = mean[batch](1.3 ^ (logp * entropy));"},
    {"pow_both", "loss = mean[batch](pow(-logp, entropy));"},
    {"exp", "loss = mean[batch](exp(logp - old_logp));"},
    {"log", "loss = mean[batch](log(-logp) + log(entropy));"},
    {"log1p", "loss = mean[batch](log1p(-logp));"},
    {"expm1", "loss = mean[batch](expm1(logp));"},
    {"sqrt", "loss = mean[batch](sqrt(entropy) * sqrt(-logp));"},
    {"abs", "loss = mean[batch](abs(logp - old_logp));"},
    {"sigmoid", "loss = mean[batch](sigmoid(logp * 2));"},
    {"softplus", "loss = mean[batch](softplus(logp - old_logp));"},
    {"tanh", "loss = mean[batch](tanh(logp + entropy));"},
    {"min_max", "loss = mean[batch](min(logp, old_logp) + 2 * max(logp, old_logp));"},
    {"clamp", "loss = -mean[batch](clamp(exp(logp - old_logp), 0.9, 1.1) * reward);"},
    {"where", "loss = mean[batch](where(logp > old_logp, exp(logp), logp * entropy));"},
    {"sign_zero", "loss = mean[batch](sign(logp - old_logp) * logp);"},
    {"bool_arith", "loss = mean[batch]((reward > 0.5) * logp + (logp > -1) * entropy);"},
    {"uinput", "input token value;\nloss = mean[batch](value * logp);"},
    {"sum_seq", "loss = mean[batch](sum[seq](logp) ^ 2);"},
    {"mean_seq_reuse", "let s = exp(mean[seq](logp - old_logp));\nloss = -mean[batch](s * logp);"},
    {"gspo_like", "let s = exp(mean[seq](logp - old_logp));\n"
                  "let adv = (reward - mean[group](reward)) / (std[group](reward) + 1e-6);\n"
                  "loss = -mean[batch](min(s * adv, clamp(s, 0.99, 1.01) * adv));"},
    {"max_seq", "loss = mean[batch](max[seq](logp * entropy));"},
    {"min_seq", "loss = mean[batch](min[seq](logp) * entropy);"},
    {"std_seq", "loss = mean[batch](std[seq](logp));"},
    {"std_seq_ddof", "loss = mean[batch](std[seq](logp, ddof=1) + var[seq](entropy, ddof=1));"},
    {"var_seq", "loss = mean[batch](var[seq](logp) * logp);"},
    {"lse_seq", "loss = mean[batch](where(len > 0, logsumexp[seq](logp), 0));"},
    {"lse_group_reuse", "loss = -mean[batch](exp(logp - logsumexp[group](logp)));"},
    {"filter_seq", "loss = mean[batch](sum[seq](logp, old_logp > logp) + mean[seq](entropy, pos > 0));"},
    {"filter_coarse", "loss = mean[batch](mean[group](logp, reward > 0.5));"},
    {"group_of_seq", "loss = mean[batch](mean[group](sum[seq](logp)) * logp);"},
    {"std_group_of_seq", "loss = mean[batch](std[group](sum[seq](logp), ddof=1));"},
    {"var_group_filter", "loss = mean[batch](var[group](mean[seq](logp), not truncated));"},
    {"max_group", "loss = mean[batch](max[group](sum[seq](logp)) + min[group](mean[seq](entropy)));"},
    {"lse_group_filter",
     "loss = mean[batch](where(count[group](pos < 3) > 0, logsumexp[group](logp, pos < 3), 0));"},
    {"skip_level", "loss = mean[batch](mean[group](logp) * sum[group](entropy));"},
    {"batch_linear", "loss = 2 * sum[batch](logp) - 3 * mean[batch](entropy) + mean[batch](mean[seq](logp));"},
    {"seq_mean_token_sum", "loss = -mean[batch](sum[seq](reward * logp));"},
    {"rank_count_zero", "loss = mean[batch](where(rank[seq](logp) < 1, logp, 0) + count[seq](logp > -1) * logp);"},
    {"uniform_zero", "loss = mean[batch](where(uniform() < 0.5, logp, entropy));"},
    {"broadcast_group", "loss = mean[batch](mean[group](logp) + entropy * mean[group](reward));"},
    {"reinforce", "let adv = reward - mean[group](reward);\nloss = -mean[batch](adv * logp);"},
    {"grpo", "let adv = (reward - mean[group](reward)) / (std[group](reward) + 1e-6);\n"
             "let ratio = exp(logp - old_logp);\n"
             "loss = -mean[batch](min(ratio * adv, clamp(ratio, 0.8, 1.2) * adv));"},
    {"rec", "let adv = reward - mean[group](reward);\nlet ratio = sg(exp(logp - old_logp));\n"
            "let keep = (adv >= 0 and ratio <= 1.2) or (adv <= 0 and ratio >= 0.8);\n"
            "loss = -mean[batch](where(keep, adv * logp, 0));\nmetric clip = mean[batch](not keep);"},
    {"kl_entropy", "loss = mean[batch](exp(ref_logp - logp) - 1 - (ref_logp - logp) - 0.01 * entropy "
                   "+ 0.5 * (logp - ref_logp) ^ 2);"},
    {"cumsum", "loss = mean[batch](cumsum[seq](logp) * entropy);"},
    {"revcumsum_discount", "loss = mean[batch](revcumsum[seq](logp * entropy, 0.9) ^ 2);"},
    {"cumsum_seq_discount", "loss = mean[batch](cumsum[seq](logp, sigmoid(reward)) * old_logp);"},
    {"scan_nested", "loss = mean[batch](revcumsum[seq](cumsum[seq](logp), 0.5) * entropy);"},
    {"scan_reduced_reuse", "loss = mean[batch](sum[seq](revcumsum[seq](logp)) * logp);"},
    {"median_seq", "loss = mean[batch](median[seq](logp) * entropy);"},
    {"quantile", "loss = mean[batch](quantile[group](logp * entropy, 0.3) + quantile[seq](entropy, 0.9) * logp);"},
    {"median_group_of_seq", "loss = mean[batch](median[group](sum[seq](logp)) * logp);"},
    {"top_topfrac", "loss = mean[batch](where(topk[seq](logp, 2), logp, entropy) + topfrac[group](entropy, 0.5) * logp);"},
    {"floor_ceil", "loss = mean[batch](floor(logp * 3) * logp + ceil(entropy) * entropy);"},
    {"metrics_final", "loss = -mean[batch](logp);\nmetric v = var[batch](logp);\n"
                      "metric c = mean[batch]((logp - mean[batch](logp)) ^ 2);\n"
                      "metric r = mean[batch](rank[batch](logp) < 3);\nmetric l = logsumexp[batch](entropy);\n"
                      "metric mx = max[batch](logp) - min[batch](entropy);\nmetric s = std[batch](logp, ddof=1);\n"
                      "metric md = median[batch](logp);\nmetric tp = mean[batch](topk[batch](entropy, 3));"},
};

static void run_fd_suite(void) {
  char src[2048];
  for (size_t i = 0; i < sizeof fd_programs / sizeof *fd_programs; i++) {
    snprintf(src, sizeof src, "objective t \"test\";\n%s\n", fd_programs[i][1]);
    Prog P;
    if (!compile(src, &P)) {
      failures++;
      printf("FAIL compile %s\n", fd_programs[i][0]);
      continue;
    }
    for (uint64_t seed = 0; seed < 6; seed++) {
      Batch *b = random_batch(seed);
      fd_check(fd_programs[i][0], &P, b, seed);
      micro_check(fd_programs[i][0], &P, b, seed);
      bt_free(b);
    }
    release(&P);
  }
}

/* Batch statistics of values the loss sees through sg only (the plan's statistics stage).  The
 * statistic is a constant with respect to logp, so the gradient of each program is checked by
 * finite differences of its frozen twin, where sg(logp) is the input `value`, set to logp's value
 * and held while logp moves; micro_check then checks that micro-batches (the statistics computed
 * before them over the whole batch) give the whole batch's results. */
static const char *const sg_programs[][3] = {
    {"snis", "let w = exp(sg(logp - old_logp));\nlet adv = reward - mean[group](reward);\n"
             "loss = -mean[batch](w / mean[batch](w) * adv * logp);",
     "input token value;\nlet w = exp(value - old_logp);\nlet adv = reward - mean[group](reward);\n"
     "loss = -mean[batch](w / mean[batch](w) * adv * logp);"},
    {"batch_threshold", "loss = -mean[batch](where(sg(logp) > mean[batch](sg(logp)), reward * logp, "
                        "entropy * std[batch](sg(logp))));",
     "input token value;\nloss = -mean[batch](where(value > mean[batch](value), reward * logp, "
     "entropy * std[batch](value)));"},
    {"adaptive_coef", "let c = 1 / (1 + var[batch](sg(logp - old_logp)));\n"
                      "loss = -mean[batch](c * reward * logp) + c * mean[batch](entropy);",
     "input token value;\nlet c = 1 / (1 + var[batch](value - old_logp));\n"
     "loss = -mean[batch](c * reward * logp) + c * mean[batch](entropy);"},
    {"batch_rank", "let top = rank[batch](sg(logp)) >= 0.8 * sum[batch](len);\n"
                   "loss = -mean[batch](where(top, reward * logp, 0.5 * logp));",
     "input token value;\nlet top = rank[batch](value) >= 0.8 * sum[batch](len);\n"
     "loss = -mean[batch](where(top, reward * logp, 0.5 * logp));"},
};

static void run_sg_suite(void) {
  char src[2048], src2[2048];
  for (size_t i = 0; i < sizeof sg_programs / sizeof *sg_programs; i++) {
    snprintf(src, sizeof src, "objective t \"test\";\n%s\n", sg_programs[i][1]);
    snprintf(src2, sizeof src2, "objective t \"test\";\n%s\n", sg_programs[i][2]);
    Prog P, F;
    if (!compile(src, &P) || !compile(src2, &F)) {
      failures++;
      printf("FAIL compile %s\n", sg_programs[i][0]);
      continue;
    }
    checks++;
    if (!P.p->stats) {
      failures++;
      printf("FAIL plan %s: no statistics stage\n", sg_programs[i][0]);
    }
    for (uint64_t seed = 0; seed < 6; seed++) {
      Batch *b = random_batch(seed);
      for (int t = 0; t < b->ntoks; t++) b->uin[0][t] = b->in[IN_LOGP][t];
      ItResult r, f;
      it_eval(P.p, b, P.params, 0, &r);
      it_eval(F.p, b, F.params, 0, &f);
      checks++;
      if (memcmp(&r.loss, &f.loss, sizeof r.loss)) {
        failures++;
        printf("FAIL sg %s: seed %llu: loss %.17g, frozen twin's %.17g\n", sg_programs[i][0],
               (unsigned long long)seed, r.loss, f.loss);
      }
      /* the twin's gradient with value held is the program's: checked by finite differences */
      for (int k = 0; k < IR_NGRADS; k++)
        for (int t = 0; t < b->ntoks; t++) {
          checks++;
          if (!(fabs(r.grad[k][t] - f.grad[k][t]) <= 1e-12 * (1 + fabs(f.grad[k][t])))) {
            failures++;
            printf("FAIL sg %s: seed %llu: d/d%s token %d: %.17g, frozen twin's %.17g\n", sg_programs[i][0],
                   (unsigned long long)seed, k ? "entropy" : "logp", t, r.grad[k][t], f.grad[k][t]);
          }
        }
      it_result_free(&r);
      it_result_free(&f);
      fd_check(sg_programs[i][0], &F, b, seed);
      micro_check(sg_programs[i][0], &P, b, seed);
      bt_free(b);
    }
    release(&P);
    release(&F);
  }
}

/* A batch of one group, one sequence with the given token logp / old_logp. */
static Batch *tiny(const double *lp, const double *old, int n) {
  int nseq[1] = {1}, lens[1] = {n};
  Batch *b = bt_alloc(1, nseq, lens, 0, NULL);
  for (int t = 0; t < n; t++) {
    b->in[IN_LOGP][t] = lp[t];
    b->in[IN_OLD_LOGP][t] = old[t];
    b->in[IN_ENTROPY][t] = 1;
  }
  b->in[IN_REWARD][0] = 1;
  return b;
}

static void expect_grad(const char *name, const char *body, const double *lp, const double *old,
                        int n, const double *want) {
  char src[1024];
  snprintf(src, sizeof src, "objective t \"test\";\n%s\n", body);
  Prog P;
  if (!compile(src, &P)) {
    failures++;
    printf("FAIL compile %s\n", name);
    return;
  }
  Batch *b = tiny(lp, old, n);
  ItResult r;
  it_eval(P.p, b, P.params, 0, &r);
  for (int t = 0; t < n; t++) {
    checks++;
    /* exact: bit-for-bit equal, and never NaN */
    if (!(r.grad[IR_GRAD_LOGP][t] == want[t])) {
      failures++;
      printf("FAIL exact %s: token %d: got %.17g, want %.17g\n", name, t, r.grad[IR_GRAD_LOGP][t], want[t]);
    }
  }
  it_result_free(&r);
  bt_free(b);
  release(&P);
}

static void run_exact_suite(void) {
  /* where: the unselected branch is NaN (log of a negative) or Inf (exp overflow) */
  double lp[3] = {-0.5, -2.0, -3.0}, old[3] = {-1, -1, -1};
  double w1[3] = {1.0 / 3 / 0.5, 0, 0};
  expect_grad("where_nan", "loss = mean[batch](where(logp > -1, log(logp + 1), 0));", lp, old, 3, w1);
  double lpi[3] = {-2.0, -3.0, -4.0}, w2[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  expect_grad("where_inf", "loss = mean[batch](where(logp < -1, logp, exp(-logp * 1000)));", lpi, old, 3, w2);
  expect_grad("where_inf_chain", "loss = mean[batch](where(logp < -1, logp, exp(-logp * 1000) * 2 + 1));",
              lpi, old, 3, w2);
  /* sg: the value takes part, the derivative does not: d/dlogp sum(sg(exp(logp)) * logp) = exp(logp) */
  double w9[3] = {exp(-0.5), exp(-2.0), exp(-3.0)};
  expect_grad("sg", "loss = sum[batch](sg(exp(logp)) * logp);", lp, old, 3, w9);
  /* ties: max/min reductions and element-wise min/max pick the first */
  double tl[3] = {-1, -1, -2}, to[3] = {-1, -1, -1};
  double w3[3] = {1, 0, 0};
  expect_grad("max_tie", "loss = sum[batch](max[seq](logp));", tl, to, 3, w3);
  double w4[3] = {0, 0, 1};
  expect_grad("min_no_tie", "loss = sum[batch](min[seq](logp));", tl, to, 3, w4);
  double tl2[3] = {-2, -2, -1};
  double w5[3] = {1, 0, 0};
  expect_grad("min_tie", "loss = sum[batch](min[seq](logp));", tl2, to, 3, w5);
  double w6[3] = {1, 1, 1};  /* min(logp, old): tie -> first argument (logp); -2 < -1 */
  expect_grad("elem_min_tie", "loss = sum[batch](min(logp, old_logp));", tl, to, 3, w6);
  double w7[3] = {0, 0, 0};
  expect_grad("elem_max_tie_second", "loss = sum[batch](max(old_logp, logp));", tl, to, 3, w7);
  double w8[3] = {0, 0, 0};
  expect_grad("zero_grad_ops",
              "loss = sum[batch](sg(logp) + sign(logp) + rank[seq](logp) + count[seq](logp > -1.5)"
              " + where(logp > -1.5, 1, 0) + uniform() * 0) + 0 * sum[batch](logp);",
              tl, to, 3, w8);
  /* scans: d/dlogp_s sum_t cumsum_t = (tokens from s on); discounted revcumsum: sum_{t<=s} 0.5^(s-t) */
  double w10[3] = {3, 2, 1};
  expect_grad("cumsum_exact", "loss = sum[batch](cumsum[seq](logp));", lp, old, 3, w10);
  double w11[3] = {1, 1.5, 1.75};
  expect_grad("revcumsum_exact", "loss = sum[batch](revcumsum[seq](logp, 0.5));", lp, old, 3, w11);
  /* order statistics: ties by position (the earlier element ranks first); quantile 0.25 of
   * {-1, -2, -3} is halfway between the two smallest: weight 1/2 each */
  expect_grad("median_tie", "loss = sum[batch](median[seq](logp));", tl, to, 3, w3);
  double w12[3] = {0, 0.5, 0.5};
  double lq[3] = {-1, -2, -3};
  expect_grad("quantile_weights", "loss = sum[batch](quantile[seq](logp, 0.25));", lq, to, 3, w12);
  expect_grad("top_tie", "loss = sum[batch](where(topk[seq](logp, 1), logp, 0));", tl, to, 3, w3);
  double w13[3] = {1, 1, 0};
  expect_grad("topfrac_tie", "loss = sum[batch](where(topfrac[seq](logp, 0.5), logp, 0));", tl, to, 3, w13);
  expect_grad("floor_ceil_top_zero",
              "loss = sum[batch](floor(logp) + ceil(logp) + topk[seq](logp, 1)) + 0 * sum[batch](logp);",
              tl, to, 3, w8);
}

int main(void) {
  run_fd_suite();
  run_sg_suite();
  run_exact_suite();
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
