/* rein.c — the `rein` driver: one binary, one subcommand per job (the commands: README.md, "Using rein").
 *
 *   rein check FILE...        parse, type-check and plan; diagnostics on stderr; exit 1 on error
 *   rein emit --ast FILE      print the checked syntax tree (deterministic, for golden tests)
 *   rein emit --ir|--grad [--terms]|--plan [--dump-after=PASS] FILE
 *                             print the graph IR, the differentiated IR, or the plan (FILE may be
 *                             a .rein program or IR text, .ir)
 *   rein emit --llvm [-O0] [--cpu CPU] [--precision f32|f64] FILE | --ptx [--arch sm_80|sm_90] FILE
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
 *   rein tokenize --tokenizer DIR [--decode] [--no-special] TEXT|-
 *                             encode text to ids, or decode ids (runtime/tok/tok_cli.c)
 *
 * Every command that reads an objective goes through rein_load / rein_unload (FILE: .rein, .ir or
 * std:NAME), and every command's options are a table (rein/opts.h; rein train's and rein sft's
 * are the trainer's, trn_opts.c) that also makes its --help.  Conventions (docs/compiler.md,
 * "Driver conventions"): errors are printed here, once, as "rein CMD: error: MESSAGE".
 *
 * Exit status: 0 success (warnings allowed), 1 errors in the input, 2 bad command line, 3 out of
 * memory.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "batch.h"
#include "cg.h"
#include "cg_eval.h"
#include "rein/tfm.h"
#include "frontend.h"
#include "grad_view.h"
#include "interp.h"
#include "pipeline.h"
#include "rein/common.h"
#include "rein/opts.h"
#include "rein/plot.h"
#include "rein/tok.h"
#include "rein/runtime.h"
#include "rein/train.h"
#include "rein_paths.h"

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
          "  emit --grad --terms FILE  ... and d term/d logp of each term of the loss, in source terms\n"
          "  emit --plan FILE     print the stages and fused passes\n"
          "       --dump-after=PASS  also print the IR after PASS (lower, fold, weigh, cse,\n"
          "                          dce, grad, simplify)\n"
          "  emit --llvm [-O0] [--cpu CPU] [--precision f32|f64] FILE  print the host LLVM IR\n"
          "                       of the kernels (f32: token arithmetic in float, the default)\n"
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
          "  tokenize --tokenizer DIR TEXT|-  token ids of TEXT (--decode: ids to text)\n"
          "  plot RUN... [-o OUT.svg]  training curves of runs as SVG\n"
          "\n"
          "FILE may be std:NAME, the standard library's NAME.rein; `rein COMMAND --help` lists a\n"
          "command's options.\n"
          "\n"
          "options:\n"
          "  -h, --help           show this help\n"
          "  --version            print the version\n"
          "  --max-errors N       stop after N errors (default 20)\n");
}

/* --- one load/plan/free sequence for every command that reads an objective */

/* An objective read by the driver: the front end's unit, the graph and the plan, and the
 * diagnostics.  FILE is a .rein source, IR text (.ir), or std:NAME (the standard library's
 * NAME.rein, rein_paths.h). */
typedef struct {
  Diag d;
  FeUnit u;
  IrGraph *g;
  Plan *p;
  char *std_path; /* the path std:NAME stands for */
} Loaded;

/* Reads FILE into L and runs the middle end with options O (NULL: the front end only, for
 * --ast), making the plan when PLAN.  True when the file is good; diagnostics go to stderr (at
 * most MAX_ERRORS errors).  rein_unload(L) frees it either way. */
static bool rein_load(Loaded *l, const char *path, const PipeOptions *o, bool plan, int max_errors) {
  memset(l, 0, sizeof *l);
  diag_init(&l->d, stderr);
  l->d.max_errors = max_errors;
  if (!strncmp(path, "std:", 4)) path = l->std_path = rp_std_file(path + 4);
  if (!o) return fe_check_file(&l->d, path, &l->u) && l->u.ok;
  size_t n = strlen(path);
  if (n > 3 && !strcmp(path + n - 3, ".ir")) {
    l->u.file = diag_read_file(&l->d, path);
    IrGraph *g = l->u.file ? ir_parse(&l->d, l->u.file) : NULL;
    if (g) l->g = pipe_run(NULL, g, &l->d, o, plan ? &l->p : NULL);
    return l->g != NULL;
  }
  if (!fe_check_file(&l->d, path, &l->u)) return false;
  l->d.file = l->u.file;
  l->g = pipe_run(&l->u.prog, NULL, &l->d, o, plan ? &l->p : NULL);
  return l->g != NULL;
}

static void rein_unload(Loaded *l) {
  pl_free(l->p);
  ir_free(l->g);
  fe_free(&l->u);
  free(l->std_path);
  memset(l, 0, sizeof *l);
}

/* --- the option tables' common parts */

/* Parses ARGV's options with table T for command CMD ("rein check"), whose synopsis (for --help)
 * is SYNOPSIS.  Returns the index of the first operand, or -1 with *STATUS set: 0 after --help,
 * 2 for a usage error (the message printed). */
static int rein_opts(const RcOpt *t, const char *cmd, const char *synopsis, int argc, char **argv,
                     int *status) {
  char err[512] = "";
  int k = rc_opts_parse(t, argc, argv, 1, err, sizeof err);
  if (k >= 0) return k;
  if (k == RC_OPTS_HELP) {
    printf("usage: %s %s\n\n", cmd, synopsis);
    rc_opts_help(stdout, t);
    printf("\nFILE may be std:NAME, the standard library's NAME.rein (%s).\n", rp_std_dir());
    *status = 0;
    return -1;
  }
  if (k == RC_OPTS_BAD) fprintf(stderr, "%s: error: %s\n", cmd, err);
  *status = 2;
  return -1;
}

/* rein check [--max-errors N] FILE... */
static int cmd_check(int argc, char **argv) {
  int max_errors = 20, status;
  const RcOpt t[] = {
      {.name = "max-errors", .kind = RC_OPT_INT, .dst = &max_errors, .lo = 1, .hi = 100000, .arg = "N",
       .help = "stop after N errors (default 20)", .bad = "needs a number from 1 to 100000"},
      RC_OPTS_END};
  int k = rein_opts(t, "rein check", "[OPTIONS] FILE...", argc, argv, &status);
  if (k < 0) return status;
  if (k >= argc) {
    fprintf(stderr, "rein check: error: no input files\n");
    return 2;
  }
  status = 0;
  for (int i = k; i < argc; i++) {
    /* the middle end too: it rejects programs that micro-batches could not run (docs/language.md, "Differentiation") */
    PipeOptions o = {NULL, stdout, false};
    Loaded l;
    if (!rein_load(&l, argv[i], &o, true, max_errors)) status = 1;
    rein_unload(&l);
  }
  return status;
}

/* Prints the host LLVM IR (ARCH NULL) or the PTX for ARCH of plan P.  Returns the exit status. */
static int emit_code(const Plan *p, const char *arch, const CgOptions *co) {
  CgLayout l;
  cg_layout(&l, p);
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = cg_module(cx, &l, arch ? CG_GPU : CG_CPU, co);
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

/* --arch: sm_80 or sm_90 (into a const char *). */
static int opt_arch(void *dst, const char *arg, char *err, size_t errlen) {
  if (strcmp(arg, "sm_80") && strcmp(arg, "sm_90"))
    return snprintf(err, errlen, "--arch must be sm_80 or sm_90, not `%s`", arg), -1;
  *(const char **)dst = arg;
  return 0;
}

/* --precision f32|f64 (into a bool: true for f64, CgOptions.f64). */
static int opt_precision(void *dst, const char *arg, char *err, size_t errlen) {
  if (strcmp(arg, "f32") && strcmp(arg, "f64"))
    return snprintf(err, errlen, "--precision must be f32 or f64, not `%s`", arg), -1;
  *(bool *)dst = !strcmp(arg, "f64");
  return 0;
}
#define PRECISION_OPT(flag)                                                                          \
  {.name = "precision", .kind = RC_OPT_FN, .dst = (flag), .fn = opt_precision, .arg = "P",         \
   .help = "token-loop arithmetic on the CPU: f32 (default; reductions in float64) or f64"}

/* -O0 (into a bool: no optimization). */
static int opt_o0(void *dst, const char *arg, char *err, size_t errlen) {
  if (strcmp(arg, "0"))
    return snprintf(err, errlen, "only -O0 (no optimization) may be asked for, not -O%s", arg), -1;
  *(bool *)dst = true;
  return 0;
}

/* --dump-after: a pass of the pipeline (into a const char *). */
static int opt_pass(void *dst, const char *arg, char *err, size_t errlen) {
  if (!pipe_known_pass(arg)) {
    int k = snprintf(err, errlen, "unknown pass `%s` for --dump-after (passes:", arg);
    for (int i = 0; pipe_pass_names[i] && k > 0 && (size_t)k < errlen; i++)
      k += snprintf(err + k, errlen - (size_t)k, " %s", pipe_pass_names[i]);
    if (k > 0 && (size_t)k < errlen) snprintf(err + k, errlen - (size_t)k, ")");
    return -1;
  }
  *(const char **)dst = arg;
  return 0;
}

/* rein emit --ast|--ir|--grad|--plan|--llvm|--ptx [--dump-after=PASS] FILE */
static int cmd_emit(int argc, char **argv) {
  enum { EMIT_NONE, EMIT_AST, EMIT_IR, EMIT_GRAD, EMIT_PLAN, EMIT_LLVM, EMIT_PTX };
  int what = EMIT_NONE, status;
  int terms = 0;
  const char *arch = "sm_80";
  CgOptions co = {NULL, false, false, false};
  PipeOptions o = {NULL, stdout, false};
  const RcOpt t[] = {
      {.name = "ast", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_AST, .help = "the checked syntax tree"},
      {.name = "ir", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_IR, .help = "the graph IR (FILE: .rein, or IR text .ir)"},
      {.name = "grad", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_GRAD,
       .help = "the IR with d loss/d logp and d loss/d entropy"},
      {.name = "terms", .kind = RC_OPT_FLAG, .dst = &terms, .value = 1,
       .help = "with --grad: then, as # comments, d term/d logp of each top-level term of the loss, in source terms"},
      {.name = "plan", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_PLAN, .help = "the stages and fused passes"},
      {.name = "llvm", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_LLVM, .help = "the host LLVM IR of the kernels"},
      {.name = "ptx", .kind = RC_OPT_FLAG, .dst = &what, .value = EMIT_PTX, .help = "the PTX of the GPU kernels"},
      {.name = "arch", .kind = RC_OPT_FN, .dst = &arch, .fn = opt_arch, .arg = "A", .help = "--ptx for sm_80 (default) or sm_90"},
      {.name = "cpu", .kind = RC_OPT_STR, .dst = &co.cpu, .arg = "CPU", .help = "--llvm for CPU (default: this machine's)"},
      {.letter = 'O', .kind = RC_OPT_FN, .dst = &co.no_opt, .fn = opt_o0, .arg = "0", .help = "--llvm without optimization"},
      PRECISION_OPT(&co.f64),
      {.name = "dump-after", .kind = RC_OPT_FN, .dst = &o.dump_after, .fn = opt_pass, .arg = "PASS",
       .help = "also print the IR after PASS (lower, fold, weigh, cse, dce, grad, simplify)"},
      RC_OPTS_END};
  int k = rein_opts(t, "rein emit", "--ast|--ir|--grad|--plan|--llvm|--ptx [OPTIONS] FILE", argc, argv, &status);
  if (k < 0) return status;
  if (what == EMIT_NONE && !o.dump_after) {
    fprintf(stderr, "rein emit: error: say what to emit (--ast, --ir, --grad, --plan, --llvm or --ptx)\n");
    return 2;
  }
  if (k + 1 != argc) {
    fprintf(stderr, "rein emit: error: expected exactly one input file\n");
    return 2;
  }
  if (o.dump_after && (what == EMIT_AST || what == EMIT_LLVM || what == EMIT_PTX ||
                       (what == EMIT_IR && (!strcmp(o.dump_after, "grad") || !strcmp(o.dump_after, "simplify"))))) {
    fprintf(stderr, "rein emit: error: --dump-after=%s: %s stops before that pass\n", o.dump_after,
            what == EMIT_AST ? "--ast" : what == EMIT_IR ? "--ir" : "it");
    return 2;
  }
  if (terms && what != EMIT_GRAD) {
    fprintf(stderr, "rein emit: error: --terms goes with --grad\n");
    return 2;
  }
  Loaded l;
  o.stop_before_grad = what == EMIT_IR;
  bool ok = rein_load(&l, argv[k], what == EMIT_AST ? NULL : &o, what >= EMIT_PLAN, 20);
  status = ok ? 0 : 1;
  if (ok && what == EMIT_AST) ast_print_program(stdout, &l.u.prog);
  if (ok && (what == EMIT_IR || what == EMIT_GRAD)) ir_print(stdout, l.g);
  if (ok && terms && !l.u.prog.loss) {
    fprintf(stderr, "rein emit: error: --terms needs a .rein program (the view is of its source)\n");
    status = 1;
  } else if (ok && terms && !gv_print(stdout, &l.u.prog)) {
    fprintf(stderr, "rein emit: error: a term of the loss could not be differentiated alone\n");
    status = 1;
  }
  if (ok && what == EMIT_PLAN) pl_print(stdout, l.p);
  if (ok && (what == EMIT_LLVM || what == EMIT_PTX)) status = emit_code(l.p, what == EMIT_PTX ? arch : NULL, &co);
  rein_unload(&l);
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
  for (int m = 0, first = 1; m < g->nmetrics; m++) {
    if (g->metrics[m].state >= 0) continue;
    fputs(first ? "" : ", ", out);
    first = 0;
    ir_print_quoted(out, g->metrics[m].name);
    fputs(": ", out);
    json_num(out, r->metrics[m]);
  }
  fputs("}, ", out);
  bool states = false;
  for (int m = 0; m < g->nmetrics; m++) states |= g->metrics[m].state >= 0;
  if (states) { /* the states' next values: what the update statements computed */
    fputs("\"state\": {", out);
    bool first = true;
    for (int m = 0; m < g->nmetrics; m++) {
      if (g->metrics[m].state < 0) continue;
      fputs(first ? "" : ", ", out);
      first = false;
      ir_print_quoted(out, g->metrics[m].name);
      fputs(": ", out);
      json_num(out, r->metrics[m]);
    }
    fputs("}, ", out);
  }
  fputs("\"grad\": {", out);
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
  const char *out = NULL;
  CgOptions co = {NULL, false, false, false};
  int status;
  const RcOpt t[] = {
      {.name = "output", .letter = 'o', .kind = RC_OPT_STR, .dst = &out, .arg = what,
       .help = exe ? "the trainer to write (required)" : "the shared object to write (required)"},
      {.name = "cpu", .kind = RC_OPT_STR, .dst = &co.cpu, .arg = "CPU", .help = "native code for CPU (default: this machine's)"},
      PRECISION_OPT(&co.f64),
      RC_OPTS_END};
  int k = rein_opts(t, cmd, "FILE -o OUT [OPTIONS]", argc, argv, &status);
  if (k < 0) return status;
  if (k + 1 != argc) {
    fprintf(stderr, "%s: error: expected exactly one objective file\n", cmd);
    return 2;
  }
  if (!out) {
    fprintf(stderr, "%s: error: -o %s is required\n", cmd, what);
    return 2;
  }
  PipeOptions o = {NULL, stdout, false};
  Loaded l;
  status = 1;
  if (rein_load(&l, argv[k], &o, true, 20) &&
      (exe ? cg_build_trainer(l.p, out, &co, stderr) : cg_compile(l.p, out, &co, stderr)))
    status = 0;
  rein_unload(&l);
  return status;
}

/* rein train FILE [trainer options]: compile the objective in memory, then run the trainer (its
 * options: trn_opts.c's table). */
static int cmd_train(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
      trn_opts_usage(stdout, TRN_CMD_TRAIN, "rein train FILE.rein");
      return 0;
    }
    fprintf(stderr, "rein train: error: usage: rein train FILE.rein [OPTIONS] (rein train --help)\n");
    return 2;
  }
  PipeOptions po = {NULL, stdout, false};
  Loaded l;
  int status = 1;
  if (rein_load(&l, argv[1], &po, true, 20)) {
    CgOptions co = {NULL, false, true, false}; /* the trainer runs on the CPU: no PTX */
    char err[1024];
    rt_objective *o = cg_compile_and_open(l.p, &co, err, sizeof err);
    if (!o) fprintf(stderr, "rein train: error: %s\n", err);
    else {
      status = trn_main("rein train", o, argc - 1, argv + 1);
      rt_close(o);
    }
  }
  rein_unload(&l);
  return status;
}

/* rein sft [trainer options]: the standard library's sft objective (lang/std/sft.rein), compiled
 * in memory, through the trainer's packer and step (trn_sft_run). */
static int cmd_sft(int argc, char **argv) {
  PipeOptions po = {NULL, stdout, false};
  Loaded l;
  int status = 1;
  if (rein_load(&l, "std:sft", &po, true, 20)) {
    CgOptions co = {NULL, false, true, false}; /* the trainer runs on the CPU: no PTX */
    char err[1024];
    rt_objective *o = cg_compile_and_open(l.p, &co, err, sizeof err);
    if (!o) fprintf(stderr, "rein sft: error: %s\n", err);
    else {
      status = trn_sft_run("rein sft", o, argc, argv);
      rt_close(o);
    }
  }
  rein_unload(&l);
  return status;
}

/* --set NAME=VALUE, kept until the objective is read (a list of strings). */
typedef struct {
  const char **v;
  int n;
} SetList;

static int opt_set(void *dst, const char *arg, char *err, size_t errlen) {
  (void)err, (void)errlen;
  SetList *l = dst;
  l->v = rc_realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
  l->v[l->n++] = arg;
  return 0;
}

/* True when the loss, every metric and every gradient entry of R are finite; otherwise says on
 * stderr what is not (the JSON on stdout already shows the values, as "nan", "inf", "-inf"). */
static bool eval_finite(const IrGraph *g, const Batch *b, const ItResult *r) {
  int bad_metrics = 0, first_metric = -1;
  for (int m = 0; m < g->nmetrics; m++)
    if (!isfinite(r->metrics[m]) && bad_metrics++ == 0) first_metric = m;
  long long bad_grad = 0;
  int fk = -1, ft = -1;
  for (int k = 0; k < IR_NGRADS; k++)
    for (int t = 0; t < b->ntoks; t++)
      if (!isfinite(r->grad[k][t]) && bad_grad++ == 0) fk = k, ft = t;
  if (isfinite(r->loss) && !bad_metrics && !bad_grad) return true;
  fprintf(stderr, "rein eval: error: the result is not finite:");
  if (!isfinite(r->loss)) fprintf(stderr, " loss %g;", r->loss);
  if (bad_metrics)
    fprintf(stderr, " %d metric(s), the first `%s` = %g;", bad_metrics, g->metrics[first_metric].name,
            r->metrics[first_metric]);
  if (bad_grad) {
    int s = b->tok_seq[ft], gi = b->seq_grp[s];
    fprintf(stderr, " %lld gradient entries, the first d loss/d %s of group %d, sequence %d, token %d = %g;", bad_grad,
            ir_grad_names[fk], gi, s - b->grp_seq[gi], ft - b->seq_tok[s], r->grad[fk][ft]);
  }
  fprintf(stderr, " exit status %d\n", RC_EXIT_NONFINITE);
  return false;
}

/* Runs objective L on BATCH with BACKEND and prints the result; returns the exit status. */
static int eval_loaded(const Loaded *l, const char *batch, const char *backend, const SetList *sets, int micro,
                       int threads, bool f64) {
  const IrGraph *g = l->g;
  double *params = rc_calloc((size_t)g->nparams + 1, sizeof(double));
  for (int i = 0; i < g->nparams; i++) params[i] = g->params[i].value;
  int status = 2;
  bool ok = true;
  for (int i = 0; ok && i < sets->n; i++) ok = apply_set(g, sets->v[i], params);
  Batch *b = ok ? bt_read_json(batch, g, stderr) : NULL;
  if (ok && !b) ok = false, status = 1;
  /* trainer constants: --set (finite), else the batch file's; a state starts at its initial value */
  for (int i = 0; ok && i < g->nparams; i++)
    for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++)
      if (g->params[i].kind == REIN_PARAM_TRAINER && isnan(params[i]) &&
          !strcmp(g->params[i].name, rein_trainer_const_name(k)))
        params[i] = b->tconst[k];
  for (int i = 0; ok && i < g->nparams; i++)
    if (g->params[i].kind == REIN_PARAM_TRAINER && isnan(params[i])) {
      fprintf(stderr, "rein eval: error: the objective reads the trainer constant `%s`, which %s lacks: give it "
              "in the batch (\"%s\": N) or with --set %s=N\n", g->params[i].name, batch, g->params[i].name,
              g->params[i].name);
      ok = false, status = 1;
    }
  if (ok) status = 1;
  if (!ok) {
    bt_free(b);
    b = NULL;
  }
  if (b) {
    ItResult r;
    char err[1024];
    CgOptions co = {NULL, false, strcmp(backend, "gpu") != 0, f64}; /* PTX only for the GPU */
    bool done = cg_eval(l->p, b, params, micro, backend, threads, &co, &r, err, sizeof err);
    if (!done) fprintf(stderr, "rein eval: error: %s\n", err);
    if (done) {
      print_eval(stdout, g, b, &r);
      status = fflush(stdout) == 0 ? 0 : 1;
      if (!status && !eval_finite(g, b, &r)) status = RC_EXIT_NONFINITE;
      it_result_free(&r);
    }
  }
  bt_free(b);
  free(params);
  return status;
}

/* rein eval FILE --batch BATCH.json [--backend interp] [--set NAME=VALUE]... [--micro-groups K] */
static int cmd_eval(int argc, char **argv) {
  const char *batch = NULL, *backend = "interp";
  SetList sets = {NULL, 0};
  int micro = 0, threads = 0, status;
  bool f64 = false;
  const RcOpt t[] = {
      {.name = "batch", .kind = RC_OPT_STR, .dst = &batch, .arg = "B.json", .help = "the batch (required)"},
      {.name = "backend", .kind = RC_OPT_STR, .dst = &backend, .arg = "B", .help = "interp (default), cpu or gpu"},
      {.name = "set", .kind = RC_OPT_FN, .dst = &sets, .fn = opt_set, .arg = "NAME=VALUE",
       .help = "a param's value (repeatable)"},
      {.name = "micro-groups", .kind = RC_OPT_INT, .dst = &micro, .lo = 1, .hi = 1000000000, .arg = "K",
       .help = "whole groups per micro-batch", .bad = "needs a positive number of groups"},
      {.name = "threads", .kind = RC_OPT_INT, .dst = &threads, .lo = 1, .hi = 1024, .arg = "N",
       .help = "CPU threads of the cpu backend", .bad = "needs a number from 1 to 1024"},
      PRECISION_OPT(&f64),
      RC_OPTS_END};
  int k = rein_opts(t, "rein eval", "FILE --batch B.json [OPTIONS]", argc, argv, &status);
  if (k < 0) {
    free(sets.v);
    return status;
  }
  status = 2;
  if (k + 1 != argc) {
    fprintf(stderr, "rein eval: error: expected exactly one objective file\n");
  } else if (!batch) {
    fprintf(stderr, "rein eval: error: --batch BATCH.json is required\n");
  } else if (strcmp(backend, "interp") && strcmp(backend, "cpu") && strcmp(backend, "gpu")) {
    fprintf(stderr, "rein eval: error: unknown backend `%s` (interp, cpu or gpu)\n", backend);
  } else {
    PipeOptions o = {NULL, stdout, false};
    Loaded l;
    status = rein_load(&l, argv[k], &o, true, 20) ? eval_loaded(&l, batch, backend, &sets, micro, threads, f64) : 1;
    rein_unload(&l);
  }
  free(sets.v);
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
  if (!strcmp(cmd, "sft")) return cmd_sft(argc - 1, argv + 1);
  if (!strcmp(cmd, "plot")) return plot_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "tokenize")) return tok_cli_main(argc - 1, argv + 1);
  fprintf(stderr, "rein: error: unknown command `%s` (try `rein --help`)\n", cmd);
  return 2;
}
