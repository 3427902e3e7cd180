/* rein.c — the `rein` driver: one binary, one subcommand per job (spec §6).
 *
 *   rein check FILE...        parse, type-check and plan; diagnostics on stderr; exit 1 on error
 *   rein emit --ast FILE      print the checked syntax tree (deterministic, for golden tests)
 *   rein emit --ir|--grad|--plan [--dump-after=PASS] FILE
 *                             print the graph IR, the differentiated IR, or the plan (FILE may be
 *                             a .rein program or IR text, .ir)
 *   rein emit --llvm [-O0] [--cpu CPU] FILE | --ptx [--arch sm_80|sm_90] FILE
 *                             print the optimized host LLVM IR, or the PTX of the GPU kernels
 *   rein compile FILE -o NAME.so [--cpu NAME]
 *                             compile to a shared object (rein/objective.h): native code, PTX
 *                             for sm_80 and sm_90, and the descriptor
 *   rein eval FILE --batch B.json [--backend interp|cpu|gpu] [--set NAME=VALUE]...
 *        [--micro-groups K] [--threads N]
 *                             evaluate loss, metrics and gradients on a batch; JSON on stdout
 *   rein model ...            the transformer executor (runtime/tfm_cli.c)
 *   rein train FILE [OPTIONS] compile FILE in memory and run the trainer (runtime/trn_loop.c)
 *   rein build FILE -o EXE    a standalone trainer: the objective and a main() linked with the
 *                             runtime's static libraries (no LLVM)
 *   rein sft [OPTIONS]        the supervised warm start (runtime/trn_sft.c)
 *   rein plot RUN...          training curves as SVG (runtime/plot.c)
 *
 * Exit status: 0 success (warnings allowed), 1 errors in the input, 2 bad command line.
 */
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "batch.h"
#include "cg.h"
#include "rein/tfm.h"
#include "frontend.h"
#include "interp.h"
#include "pipeline.h"
#include "rein/plot.h"
#include "rein/runtime.h"
#include "rein/train.h"

#ifndef REIN_VERSION
#define REIN_VERSION "0.1.0"
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: rein COMMAND [OPTIONS] FILE...\n"
          "\n"
          "commands:\n"
          "  check FILE...        parse and type-check Rein objectives\n"
          "  emit --ast FILE      print the checked syntax tree\n"
          "  emit --ir FILE       print the graph IR (FILE: .rein, or IR text .ir)\n"
          "  emit --grad FILE     print the IR with d loss/d logp and d loss/d entropy\n"
          "  emit --plan FILE     print the stages and fused passes\n"
          "       --dump-after=PASS  also print the IR after PASS (lower, fold, cse, dce,\n"
          "                          grad, simplify)\n"
          "  emit --llvm [-O0] [--cpu CPU] FILE  print the host LLVM IR of the kernels\n"
          "  emit --ptx [--arch A] FILE  print the PTX (A: sm_80, the default, or sm_90)\n"
          "  compile FILE -o NAME.so [--cpu CPU]  compile to a shared object (native code for\n"
          "                       this machine's CPU, or CPU; PTX for sm_80 and sm_90)\n"
          "  eval FILE --batch B.json [--backend interp|cpu|gpu] [--set NAME=VALUE]...\n"
          "       [--micro-groups K] [--threads N]  evaluate on a batch; prints JSON loss,\n"
          "                       metrics, grad\n"
          "  model init|logprobs|generate ...  the transformer executor: make a random\n"
          "                       model, score token sequences, sample (rein model --help)\n"
          "  train FILE [OPTIONS]  train the policy with objective FILE: explore, train, evaluate,\n"
          "                       checkpoint (rein train --help lists the options)\n"
          "  build FILE -o TRAINER  a standalone trainer binary for objective FILE (no LLVM)\n"
          "  sft [OPTIONS]        supervised warm start on the task's demonstrations\n"
          "  plot RUN... [-o OUT.svg]  training curves of runs as SVG\n"
          "\n"
          "options:\n"
          "  -h, --help           show this help\n"
          "  --version            print the version\n"
          "  --max-errors N       stop after N errors (default 20)\n");
}

/* S as a whole decimal number in [LO, HI]. */
static bool parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static int parse_max_errors(const char *s, int *out) {
  long v;
  if (!parse_long(s, 1, 100000, &v)) {
    fprintf(stderr, "rein: error: --max-errors needs a number from 1 to 100000, not `%s`\n", s);
    return 0;
  }
  *out = (int)v;
  return 1;
}

/* Loads FILE (.rein source, or .ir text) and runs the middle end.  On success returns the graph
 * (and the plan unless O->stop_before_grad); diagnostics go to D.  The caller frees U, G, P. */
static IrGraph *load(const char *path, Diag *d, FeUnit *u, const PipeOptions *o, Plan **plan) {
  memset(u, 0, sizeof *u);
  size_t n = strlen(path);
  if (n > 3 && !strcmp(path + n - 3, ".ir")) {
    u->file = diag_read_file(d, path);
    if (!u->file) return NULL;
    IrGraph *g = ir_parse(d, u->file);
    if (!g) return NULL;
    return pipe_run(NULL, g, d, o, plan);
  }
  if (!fe_check_file(d, path, u)) return NULL;
  d->file = u->file;
  return pipe_run(&u->prog, NULL, d, o, plan);
}

/* rein check [--max-errors N] FILE... */
static int cmd_check(int argc, char **argv) {
  static const struct option opts[] = {{"max-errors", required_argument, 0, 'm'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int max_errors = 20, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'm' && parse_max_errors(optarg, &max_errors)) continue;
    if (c == 'h') { usage(stdout); return 0; }
    return 2;
  }
  if (optind >= argc) {
    fprintf(stderr, "rein check: error: no input files\n");
    return 2;
  }
  int status = 0;
  for (int i = optind; i < argc; i++) {
    Diag d;
    diag_init(&d, stderr);
    d.max_errors = max_errors;
    FeUnit u;
    /* the middle end too: it rejects programs that micro-batches could not run (spec §5) */
    PipeOptions o = {NULL, stdout, false};
    Plan *p = NULL;
    IrGraph *g = load(argv[i], &d, &u, &o, &p);
    if (!g) status = 1;
    pl_free(p);
    ir_free(g);
    fe_free(&u);
  }
  return status;
}

/* Prints the host LLVM IR (ARCH NULL) or the PTX for ARCH of plan P.  Returns the exit status. */
static int emit_code(const Plan *p, const char *arch, const CgOptions *co) {
  CgLayout l;
  cg_layout(&l, p);
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = cg_module(cx, &l, arch ? CG_GPU : CG_CPU);
  char err[1024] = "";
  int status = 1;
  if (cg_finish_module(m, arch ? CG_GPU : CG_CPU, arch, co, err, sizeof err)) {
    if (arch) {
      char *ptx = cg_emit_ptx(m, arch, err, sizeof err);
      if (ptx) fputs(ptx, stdout), status = 0;
      free(ptx);
    } else {
      char *text = LLVMPrintModuleToString(m);
      fputs(text, stdout);
      LLVMDisposeMessage(text);
      status = 0;
    }
  }
  if (status) fprintf(stderr, "rein emit: error: %s\n", err);
  LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  cg_layout_free(&l);
  return status;
}

/* rein emit --ast|--ir|--grad|--plan|--llvm|--ptx [--dump-after=PASS] FILE */
static int cmd_emit(int argc, char **argv) {
  enum { EMIT_NONE, EMIT_AST, EMIT_IR, EMIT_GRAD, EMIT_PLAN, EMIT_LLVM, EMIT_PTX } what = EMIT_NONE;
  const char *arch = "sm_80";
  CgOptions co = {NULL, false, false};
  static const struct option opts[] = {{"ast", no_argument, 0, 'a'},
                                       {"llvm", no_argument, 0, 'l'},
                                       {"ptx", no_argument, 0, 'x'},
                                       {"arch", required_argument, 0, 'r'},
                                       {"cpu", required_argument, 0, 'c'},
                                       {"ir", no_argument, 0, 'i'},
                                       {"grad", no_argument, 0, 'g'},
                                       {"plan", no_argument, 0, 'p'},
                                       {"dump-after", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  PipeOptions o = {NULL, stdout, false};
  int c;
  while ((c = getopt_long(argc, argv, "hO:", opts, NULL)) != -1) {
    switch (c) {
    case 'a': what = EMIT_AST; break;
    case 'l': what = EMIT_LLVM; break;
    case 'c': co.cpu = optarg; break;
    case 'x': what = EMIT_PTX; break;
    case 'r':
      if (strcmp(optarg, "sm_80") && strcmp(optarg, "sm_90")) {
        fprintf(stderr, "rein emit: error: --arch must be sm_80 or sm_90, not `%s`\n", optarg);
        return 2;
      }
      arch = optarg;
      break;
    case 'O':
      if (strcmp(optarg, "0")) {
        fprintf(stderr, "rein emit: error: only -O0 (no optimization) may be asked for, not -O%s\n", optarg);
        return 2;
      }
      co.no_opt = true;
      break;
    case 'i': what = EMIT_IR; break;
    case 'g': what = EMIT_GRAD; break;
    case 'p': what = EMIT_PLAN; break;
    case 'd':
      if (!pipe_known_pass(optarg)) {
        fprintf(stderr, "rein emit: error: unknown pass `%s` for --dump-after (passes:", optarg);
        for (int i = 0; pipe_pass_names[i]; i++) fprintf(stderr, " %s", pipe_pass_names[i]);
        fprintf(stderr, ")\n");
        return 2;
      }
      o.dump_after = optarg;
      break;
    case 'h': usage(stdout); return 0;
    default: return 2;
    }
  }
  if (what == EMIT_NONE && !o.dump_after) {
    fprintf(stderr, "rein emit: error: say what to emit (--ast, --ir, --grad, --plan, --llvm or --ptx)\n");
    return 2;
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "rein emit: error: expected exactly one input file\n");
    return 2;
  }
  if (o.dump_after && (what == EMIT_AST || what == EMIT_LLVM || what == EMIT_PTX || (what == EMIT_IR && (!strcmp(o.dump_after, "grad") ||
                                                                  !strcmp(o.dump_after, "simplify"))))) {
    fprintf(stderr, "rein emit: error: --dump-after=%s: %s stops before that pass\n", o.dump_after,
            what == EMIT_AST ? "--ast" : what == EMIT_IR ? "--ir" : "it");
    return 2;
  }
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  int status = 1;
  if (what == EMIT_AST) {
    if (fe_check_file(&d, argv[optind], &u)) ast_print_program(stdout, &u.prog);
    status = u.ok ? 0 : 1;
  } else {
    o.stop_before_grad = what == EMIT_IR;
    Plan *p = NULL;
    IrGraph *g = load(argv[optind], &d, &u, &o, what >= EMIT_PLAN ? &p : NULL);
    if (g) {
      if (what == EMIT_IR || what == EMIT_GRAD) ir_print(stdout, g);
      if (what == EMIT_PLAN) pl_print(stdout, p);
      status = 0;
      if (what == EMIT_LLVM || what == EMIT_PTX) status = emit_code(p, what == EMIT_PTX ? arch : NULL, &co);
    }
    pl_free(p);
    ir_free(g);
  }
  fe_free(&u);
  if (status == 0 && fflush(stdout) != 0) status = 1;
  return status;
}

/* Prints V as a JSON number; non-finite values (JSON has none) as the strings "nan", "inf",
 * "-inf". */
static void json_num(FILE *out, double v) {
  if (!isfinite(v)) fputc('"', out);
  ir_print_num(out, v);
  if (!isfinite(v)) fputc('"', out);
}


static void print_eval(FILE *out, const IrGraph *g, const Batch *b, const ItResult *r) {
  fputs("{\"loss\": ", out);
  json_num(out, r->loss);
  fputs(", \"metrics\": {", out);
  for (int m = 0; m < g->nmetrics; m++) {
    fputs(m ? ", " : "", out);
    ir_print_quoted(out, g->metrics[m].name);
    fputs(": ", out);
    json_num(out, r->metrics[m]);
  }
  fputs("}, \"grad\": {", out);
  for (int k = 0; k < IR_NGRADS; k++) {
    fprintf(out, "%s\"%s\": [", k ? ", " : "", ir_grad_names[k]);
    for (int gi = 0; gi < b->ngroups; gi++) {
      fputs(gi ? ", [" : "[", out);
      for (int s = b->grp_seq[gi]; s < b->grp_seq[gi + 1]; s++) {
        fputs(s > b->grp_seq[gi] ? ", [" : "[", out);
        for (int t = b->seq_tok[s]; t < b->seq_tok[s + 1]; t++) {
          if (t > b->seq_tok[s]) fputs(", ", out);
          json_num(out, r->grad[k][t]);
        }
        fputc(']', out);
      }
      fputc(']', out);
    }
    fputc(']', out);
  }
  fputs("}}\n", out);
}

/* NAME=VALUE for --set: VALUE must be a finite float32 number and NAME a param of G. */
static bool apply_set(const IrGraph *g, const char *arg, double *params) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg) {
    fprintf(stderr, "rein eval: error: --set needs NAME=VALUE, not `%s`\n", arg);
    return false;
  }
  size_t n = (size_t)(eq - arg);
  int k = -1;
  for (int i = 0; i < g->nparams; i++)
    if (strlen(g->params[i].name) == n && !strncmp(g->params[i].name, arg, n)) k = i;
  if (k < 0) {
    fprintf(stderr, "rein eval: error: --set %.*s: the objective has no param `%.*s` (params:",
            (int)n, arg, (int)n, arg);
    for (int i = 0; i < g->nparams; i++) fprintf(stderr, " %s", g->params[i].name);
    fprintf(stderr, "%s)\n", g->nparams ? "" : " none");
    return false;
  }
  char *end;
  errno = 0;
  double v = strtod(eq + 1, &end);
  if (eq[1] == 0 || *end != 0 || !bi_fits_f32(v)) {
    fprintf(stderr, "rein eval: error: --set %.*s: `%s` is not %s\n", (int)n, arg, eq + 1,
            eq[1] == 0 || *end != 0 || isnan(v) ? "a number" : "a finite float32 value");
    return false;
  }
  params[k] = v;
  return true;
}

/* rein compile FILE -o NAME.so [--cpu CPU], and rein build FILE -o TRAINER [--cpu CPU] (EXE):
 * the objective as a shared object, or linked into a standalone trainer. */
static int compile_cmd(int argc, char **argv, bool exe) {
  const char *cmd = exe ? "rein build" : "rein compile", *what = exe ? "TRAINER" : "NAME.so";
  static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                       {"cpu", required_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *out = NULL;
  CgOptions co = {NULL, false, false};
  int c;
  while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 'c': co.cpu = optarg; break;
    case 'h': usage(stdout); return 0;
    default: return 2;
    }
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "%s: error: expected exactly one objective file\n", cmd);
    return 2;
  }
  if (!out) {
    fprintf(stderr, "%s: error: -o %s is required\n", cmd, what);
    return 2;
  }
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  PipeOptions o = {NULL, stdout, false};
  Plan *p = NULL;
  IrGraph *g = load(argv[optind], &d, &u, &o, &p);
  int status = 1;
  if (g && (exe ? cg_build_trainer(p, out, &co, stderr) : cg_compile(p, out, &co, stderr))) status = 0;
  pl_free(p);
  ir_free(g);
  fe_free(&u);
  return status;
}

/* rein train FILE [trainer options]: compile the objective in memory, then run the trainer. */
static int cmd_train(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
      trn_opts_usage(stdout, TRN_CMD_TRAIN, "rein train FILE.rein");
      return 0;
    }
    fprintf(stderr, "rein train: error: usage: rein train FILE.rein [OPTIONS] (rein train --help)\n");
    return 2;
  }
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  PipeOptions po = {NULL, stdout, false};
  Plan *p = NULL;
  IrGraph *g = load(argv[1], &d, &u, &po, &p);
  int status = 1;
  if (g) {
    CgOptions co = {NULL, false, true};   /* the trainer runs on the CPU: no PTX */
    char err[1024];
    rt_objective *o = cg_compile_and_open(p, &co, err, sizeof err);
    if (!o) fprintf(stderr, "rein train: error: %s\n", err);
    else {
      status = trn_main("rein train", o, argc - 1, argv + 1);
      rt_close(o);
    }
  }
  pl_free(p);
  ir_free(g);
  fe_free(&u);
  return status;
}

/* rein eval FILE --batch BATCH.json [--backend interp] [--set NAME=VALUE]... [--micro-groups K] */
static int cmd_eval(int argc, char **argv) {
  static const struct option opts[] = {{"batch", required_argument, 0, 'b'},
                                       {"backend", required_argument, 0, 'k'},
                                       {"set", required_argument, 0, 's'},
                                       {"micro-groups", required_argument, 0, 'm'},
                                       {"threads", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *batch = NULL, *backend = "interp";
  const char **sets = calloc((size_t)argc + 1, sizeof(char *));
  int nsets = 0, micro = 0, threads = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': batch = optarg; break;
    case 'k': backend = optarg; break;
    case 's': sets[nsets++] = optarg; break;
    case 'm':
    case 't': {
      long v;
      bool mg = c == 'm';
      if (!parse_long(optarg, 1, mg ? 1000000000 : 1024, &v)) {
        if (mg) fprintf(stderr, "rein eval: error: --micro-groups needs a positive number of groups, not `%s`\n", optarg);
        else fprintf(stderr, "rein eval: error: --threads needs a number from 1 to 1024, not `%s`\n", optarg);
        free(sets);
        return 2;
      }
      *(mg ? &micro : &threads) = (int)v;
      break;
    }
    case 'h': usage(stdout); free(sets); return 0;
    default: free(sets); return 2;
    }
  }
  int status = 2;
  if (optind + 1 != argc) {
    fprintf(stderr, "rein eval: error: expected exactly one objective file\n");
  } else if (!batch) {
    fprintf(stderr, "rein eval: error: --batch BATCH.json is required\n");
  } else if (strcmp(backend, "interp") && strcmp(backend, "cpu") && strcmp(backend, "gpu")) {
    fprintf(stderr, "rein eval: error: unknown backend `%s` (interp, cpu or gpu)\n", backend);
  } else {
    status = 1;
    Diag d;
    diag_init(&d, stderr);
    FeUnit u;
    PipeOptions o = {NULL, stdout, false};
    Plan *p = NULL;
    IrGraph *g = load(argv[optind], &d, &u, &o, &p);
    double *params = g ? calloc((size_t)g->nparams + 1, sizeof(double)) : NULL;
    bool ok = g != NULL;
    for (int i = 0; ok && i < g->nparams; i++) params[i] = g->params[i].value;
    for (int i = 0; ok && i < nsets; i++) ok = apply_set(g, sets[i], params);
    if (!ok && g) status = 2;
    Batch *b = ok ? bt_read_json(batch, g, stderr) : NULL;
    if (b) {
      ItResult r;
      bool done = true;
      if (!strcmp(backend, "interp")) it_eval(p, b, params, micro, &r);
      else {
        char err[1024];
        CgOptions co = {NULL, false, strcmp(backend, "gpu") != 0}; /* PTX only for the GPU */
        done = cg_eval(p, b, params, micro, !strcmp(backend, "gpu"), threads, &co, &r, err, sizeof err);
        if (!done) fprintf(stderr, "rein eval: error: %s\n", err);
      }
      if (done) {
        print_eval(stdout, g, b, &r);
        it_result_free(&r);
        status = fflush(stdout) == 0 ? 0 : 1;
      }
    }
    bt_free(b);
    free(params);
    pl_free(p);
    ir_free(g);
    fe_free(&u);
  }
  free(sets);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("rein %s\n", REIN_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
  if (!strcmp(cmd, "emit")) return cmd_emit(argc - 1, argv + 1);
  if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
  if (!strcmp(cmd, "compile")) return compile_cmd(argc - 1, argv + 1, false);
  if (!strcmp(cmd, "model")) return tfm_cli_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
  if (!strcmp(cmd, "build")) return compile_cmd(argc - 1, argv + 1, true);
  if (!strcmp(cmd, "sft")) return trn_sft_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "plot")) return plot_main(argc - 1, argv + 1);
  fprintf(stderr, "rein: error: unknown command `%s` (try `rein --help`)\n", cmd);
  return 2;
}
