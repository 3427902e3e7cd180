/* task_internal.h — what the dataset tasks (task_gsm8k.c, task_jsonl.c) share and nothing else
 * includes: giving a new dataset task its tokenizers, and reading its JSONL file line by line.
 */
#ifndef REIN_TASK_INTERNAL_H
#define REIN_TASK_INTERNAL_H

#include "rein/task.h"

#include <jansson.h>

/* Sets t->tok to the byte-level character tokenizer (tab, newline, printable ASCII, every
 * non-ASCII byte) and t->tk to TOK, or to that character tokenizer when TOK is NULL. */
void task_data_tok(Task *t, TaskTok *tok);

/* The longest dataset line read (a GSM8K item is about 1 KB). */
#define TASK_MAX_LINE (16 << 20)

/* Reads the JSONL file PATH: calls LINE(CTX, O, LINENO, ERR, ERRLEN) on each non-empty line's
 * object O (borrowed: LINE must not keep it), in order.  Returns the number of lines seen, or -1
 * with "PATH: ..." / "PATH:LINE: ..." in ERR when the file cannot be opened, a line is longer than
 * TASK_MAX_LINE or not a JSON object, LINE fails (-1; it wrote ERR), or no line has an item. */
/* Whether item IT's prompt encodes with T's tokenizer: 0, or -1 with "PATH:LINE: field 'FIELD':
 * why" in ERR.  The dataset tasks check every line so when the run starts, not when an item is
 * first sampled. */
int task_data_prompt_ok(Task *t, const TaskItem *it, const char *path, long lineno, const char *field,
                        char *err, size_t errlen);

typedef int (*TaskLineFn)(void *ctx, json_t *o, long lineno, char *err, size_t errlen);
long task_data_lines(const char *path, TaskLineFn line, void *ctx, char *err, size_t errlen);

#endif
