/* batch.h — a batch of experience in memory (groups → sequences → tokens), and its JSON reader
 * (batch.c).  The layout is the one the interpreter and the back ends index: sequences of a
 * group and tokens of a sequence are contiguous, found through offset arrays.
 */
#ifndef REIN_BATCH_H
#define REIN_BATCH_H

#include <stdint.h>

#include "ir.h"

typedef struct {
  int ngroups, nseqs, ntoks;
  int *grp_seq;             /* (ngroups+1) first sequence of each group */
  int *seq_tok;             /* (nseqs+1)   first token of each sequence */
  int *seq_grp;             /* (nseqs)     group of each sequence */
  int *tok_seq;             /* (ntoks)     sequence of each token */
  double *in[IN_COUNT];     /* built-in inputs at their level (token or seq arrays); NULL if absent */
  double **uin;             /* (nuin) user inputs at their declared level; NULL if absent */
  int nuin;
  uint64_t seed, step;
  /* the trainer constants the file gives (top-level "max_new", "group_size", "step"); NaN where
   * absent — `rein eval` then takes --set, else refuses an objective that reads one */
  double tconst[REIN_NUM_TRAINER_CONSTS];
} Batch;

/* Reads the batch JSON (docs/language.md, "The batch file") from PATH for graph G: every input G uses must be
 * present (pos and len are computed from the shape), token arrays of a sequence must have equal
 * lengths, numbers must be finite float32 values, and no unknown field may appear.  Errors go to
 * ERR as "PATH: error: group G, sequence S, field `F`: ..." (indices 0-based).  NULL on error. */
Batch *bt_read_json(const char *path, const IrGraph *g, FILE *err);
/* The largest batch file read (an endless input stops here). */
#define BT_MAX_FILE_BYTES ((size_t)1 << 30)
void bt_free(Batch *b);

/* Allocates a batch of NGROUPS groups, NSEQ[g] sequences in group g and LENS[s] tokens in
 * sequence s (s counts across groups), with zeroed arrays for every built-in input and for NUIN
 * user inputs of the given LEVELS; pos and len are filled in.  For tests and the runtime. */
Batch *bt_alloc(int ngroups, const int *nseq, const int *lens, int nuin, const Level *levels);

/* Which built-in inputs and user inputs G reads (and whether it calls uniform()). */
void bt_uses(const IrGraph *g, bool used_in[IN_COUNT], bool *used_uin, bool *uses_uniform);

#endif
