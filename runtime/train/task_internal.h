/* task_internal.h — what the dataset tasks (task_gsm8k.c, task_jsonl.c) share and nothing else
 * includes: giving a new dataset task its tokenizers.
 */
#ifndef REIN_TASK_INTERNAL_H
#define REIN_TASK_INTERNAL_H

#include "rein/task.h"

/* Sets t->tok to the byte-level character tokenizer (tab, newline, printable ASCII, every
 * non-ASCII byte) and t->tk to TOK, or to that character tokenizer when TOK is NULL. */
void task_data_tok(Task *t, TaskTok *tok);

#endif
