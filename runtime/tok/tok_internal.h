/* tok_internal.h — the loaded form of a tokenizer.json, shared by the files of runtime/tok/.
 *
 *   tok_map.c     UTF-8; the hash tables: token string -> id, merge pair -> (rank, merged id)
 *   tok_load.c    tokenizer.json / tokenizer_config.json -> Tok (jansson), every component checked
 *   tok_pre.c     normalizers (utf8proc) and pre-tokenizers (Split with PCRE2, ByteLevel)
 *   tok_bpe.c     the BPE model: byte-level alphabet, priority-queue merges, the piece cache
 *   tok_added.c   added tokens, matched in the text before pre-tokenization
 *   tok_encode.c  tok_encode: the pipeline, and the post-processor (TemplateProcessing)
 *   tok_decode.c  tok_decode: the decoder (ByteLevel) and the lookups of tok.h
 *   tok_cli.c     `rein tokenize`
 * The semantics are those of the Hugging Face tokenizers (Rust) and its JavaScript port, which the
 * tests use as the oracle (tests/tok).
 */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "rein/common.h"
#include "rein/tok.h"

/* ---- tok_map.c */

/* String -> id over the token strings of a Tok (the table stores ids; the strings live in
 * Tok.tokens). */
typedef struct {
  int32_t *slot; /* id, or -1 for an empty slot */
  size_t mask;   /* capacity - 1 (a power of two) */
  size_t n;
} TokStrMap;

/* Merge pair (left id, right id) -> rank and merged id. */
typedef struct {
  uint64_t *key; /* (left << 32 | right) + 1; 0 for an empty slot */
  int32_t *rank, *merged;
  size_t mask, n;
} TokPairMap;

void tok_strmap_init(TokStrMap *m, size_t expect);
void tok_strmap_free(TokStrMap *m);
/* Insert (or replace) the id of string s (len bytes, which must stay alive as strs[id]). */
void tok_strmap_put(TokStrMap *m, char *const *strs, const int32_t *lens, int32_t id);
int32_t tok_strmap_get(const TokStrMap *m, char *const *strs, const int32_t *lens, const char *s,
                       size_t len);

void tok_pairmap_init(TokPairMap *m, size_t expect);
void tok_pairmap_free(TokPairMap *m);
/* Insert, or replace a pair given twice (the last rank wins, as in the reference); 1 if new. */
int tok_pairmap_put(TokPairMap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
/* The rank of pair (a, b) and its merged id in *merged, or -1. */
int32_t tok_pairmap_get(const TokPairMap *m, int32_t a, int32_t b, int32_t *merged);

/* ---- components, as loaded */

typedef enum { TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD, TOK_NORM_PREPEND } TokNormKind;
typedef struct {
  TokNormKind kind;
  char *prepend; /* PREPEND: the string */
} TokNorm;

typedef enum { TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL } TokPreKind;
/* Split's behavior (SplitDelimiterBehavior of the reference). */
typedef enum {
  TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
  TOK_SPLIT_CONTIGUOUS
} TokSplitBehavior;
typedef struct {
  TokPreKind kind;
  pcre2_code *re;            /* SPLIT: the pattern; BYTELEVEL with use_regex: GPT-2's */
  TokSplitBehavior behavior; /* SPLIT */
  int invert;                /* SPLIT */
  int add_prefix_space;      /* BYTELEVEL */
  char *field;               /* its JSON path in the file, for messages ("pre_tokenizer...") */
} TokPre;

/* One added token (added_tokens of tokenizer.json). */
typedef struct {
  int32_t id;
  char *content;
  int32_t len;
  int special, lstrip, rstrip, normalized;
  /* what is matched: content, or for a normalized token (when the file has a normalizer) the
   * normalized content, as the reference matches it in the normalized text (owned: norm_content) */
  const char *match;
  int32_t match_len;
  char *norm_content;
} TokAdded;

/* A bounded cache of BPE results: piece bytes -> ids. */
typedef struct {
  uint64_t *hash;     /* 0: empty */
  uint32_t *off;      /* into bytes: the piece */
  uint32_t *plen;
  uint32_t *ids_off;  /* into ids */
  uint32_t *nids;
  size_t mask, n;
  char *bytes;
  size_t nbytes, capbytes;
  int32_t *ids;
  size_t nids_used, capids;
} TokCache;

struct Tok {
  char *path;          /* tokenizer.json, for messages */
  /* id -> string (vocab and added tokens; NULL in a hole) and its length */
  char **tokens;
  int32_t *token_len;
  int32_t ntokens;
  TokStrMap ids;       /* string -> id, vocab then added tokens (an added token wins) */
  uint8_t *is_special; /* per id */
  uint8_t *is_added;   /* per id */

  /* model: BPE */
  TokPairMap merges;
  int ignore_merges;
  int32_t unk_id;      /* -1 when none */
  int32_t byte_id[256];     /* byte-level: the id of each byte's character, -1 if not in vocab */
  uint32_t byte_char[256];  /* byte-level alphabet: byte -> code point */
  int byte_level;      /* the pre-tokenizer ends with ByteLevel: pieces are bytes to be mapped */

  TokNorm *norms;
  int nnorms;
  TokPre *pres;
  int npres;

  TokAdded *added;
  int nadded;
  /* candidates by first byte: added indices sorted by length, longest first */
  int32_t *first_idx[256];
  int32_t first_n[256];
  int any_normalized_added;

  /* post-processor TemplateProcessing (single): ids to emit, -1 marking the sequence */
  int32_t *tmpl;
  int ntmpl;
  int has_tmpl;

  int decoder_bytelevel; /* decoder ByteLevel (else: tokens joined by spaces, as the reference) */

  /* tokenizer_config.json */
  char *chat_template, *bos_token, *eos_token;

  TokCache cache;
  pcre2_match_data *md;
  /* scratch of the BPE merge loop (grown as needed) */
  int32_t *sym_id, *sym_prev, *sym_next;
  uint64_t *heap;
  size_t sym_cap;
  char *mapped;
  size_t mapped_cap;
};

/* ---- tok_map.c: UTF-8 */
/* The UTF-8 encoding of code point c into out (4 bytes room); its length. */
int tok_utf8_put(uint32_t c, char *out);
/* Decode one UTF-8 character at s (n bytes left); its length, or -1 when invalid. */
int tok_utf8_get(const unsigned char *s, size_t n, uint32_t *c);

/* ---- tok_pre.c */

/* A growing byte buffer with pieces (offset, length) into it. */
typedef struct {
  char *buf;
  size_t n, cap;
} TokBuf;
typedef struct {
  size_t off, len;
} TokSpan;
typedef struct {
  TokSpan *v;
  size_t n, cap;
} TokSpans;

void tok_buf_add(TokBuf *b, const char *s, size_t n);
void tok_spans_add(TokSpans *s, size_t off, size_t len);

/* Compile a Split pattern (UTF, UCP; Oniguruma's \s and \S as White_Space); NULL with err. */
pcre2_code *tok_regex_compile(const char *pattern, int literal, char *err, size_t errlen);
/* Apply the normalizers to s (len bytes): a new string in *out (free it), its length in *outlen.
 * 0, or -1 with err. */
int tok_normalize(const Tok *t, const char *s, size_t len, char **out, size_t *outlen, char *err,
                  size_t errlen);
/* Pre-tokenize the text b->buf[off, off+len): the pieces appended to out (spans into b, which may
 * grow).  0, or -1 with err. */
int tok_pretokenize(Tok *t, TokBuf *b, size_t off, size_t len, TokSpans *out, char *err,
                    size_t errlen);

/* ---- tok_bpe.c */
void tok_bytelevel_init(Tok *t);
void tok_cache_free(TokCache *c);
/* Append the ids of one pre-token piece (raw bytes when byte-level) to *ids. */
void tok_bpe_piece(Tok *t, const char *s, size_t len, int32_t **ids, size_t *n, size_t *cap);

/* ---- tok_added.c */
/* Index the added tokens for matching (after t->added and the normalizers are loaded): the
 * normalized tokens' match strings are made here.  0, or -1 with err (a content that does not
 * normalize). */
int tok_added_index(Tok *t, char *err, size_t errlen);
/* Find the leftmost-longest added token in s[from, len) among those with normalized == norm;
 * its index in *which and the span it takes (with lstrip/rstrip's whitespace) in *start, *end;
 * 0 when there is none. */
int tok_added_find(const Tok *t, const char *s, size_t len, size_t from, int norm, int *which,
                   size_t *start, size_t *end);

#endif
