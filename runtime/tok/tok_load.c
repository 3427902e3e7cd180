/* tok_load.c — reading tokenizer.json (and tokenizer_config.json) into a Tok.
 *
 * Every component of the file is checked against what the library implements: a type it does not
 * implement, or an option that would change the encoding in a way it does not implement (BPE
 * dropout, byte_fallback, a continuing-subword prefix, truncation, padding, single_word added
 * tokens), is an error naming the component's JSON path — never a silently different encoding.
 * Errors read "FILE: FIELD: what is wrong", on one line.  The files are untrusted input: they are
 * read only when regular and at most TOK_MAX_FILE bytes, every id is range-checked before it
 * indexes anything, and an added token may not take the id of another (tests/fuzz/fuzz_tokjson.c
 * fuzzes this reader).
 */
#include "tok_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The largest tokenizer.json / tokenizer_config.json read (the real ones of 2025 are at most a
 * few tens of MB: Qwen3's 11 MB, Gemma 3's 33 MB). */
#define TOK_MAX_FILE ((size_t)256 << 20)
#define TOK_MAX_ID (1 << 24)

static int lerr(char *err, size_t errlen, const char *path, const char *field, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* one line: control characters of the file's strings (keys, contents) written as \xNN */
  char safe[2048];
  size_t k = 0;
  for (const unsigned char *p = (const unsigned char *)msg; *p && k + 5 < sizeof safe; p++)
    if (*p < 0x20 || *p == 0x7f) k += (size_t)snprintf(safe + k, sizeof safe - k, "\\x%02x", *p);
    else safe[k++] = (char)*p;
  safe[k] = 0;
  snprintf(err, errlen, "%s: %s: %s", path, field, safe);
  return -1;
}

/* The text of PATH (*len bytes), read only when it is a regular file of at most TOK_MAX_FILE
 * bytes (a FIFO would block, /dev/zero never end); NULL with err naming the path. */
static char *read_json_file(const char *path, size_t *len, char *err, size_t errlen) {
  struct stat st;
  if (!stat(path, &st)) {
    if (!S_ISREG(st.st_mode)) {
      snprintf(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
      return NULL;
    }
    if ((uint64_t)st.st_size > TOK_MAX_FILE) {
      snprintf(err, errlen, "%s: larger than %zu bytes (limit)", path, TOK_MAX_FILE);
      return NULL;
    }
  }
  return rc_read_file(path, TOK_MAX_FILE, len, err, errlen); /* bounded too (the file may grow) */
}

/* The "type" of component J at FIELD; NULL with err. */
static const char *comp_type(json_t *j, const char *path, const char *field, char *err, size_t errlen) {
  const char *ty = json_is_object(j) ? json_string_value(json_object_get(j, "type")) : NULL;
  if (!ty) lerr(err, errlen, path, field, "expected an object with a string \"type\"");
  return ty;
}

static int get_bool(json_t *o, const char *key, int dflt) {
  json_t *v = json_object_get(o, key);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* normalizer := null | {"type": NFC|NFD|NFKC|NFKD} | {"type": "Prepend", "prepend": S}
 *             | {"type": "Sequence", "normalizers": [normalizer...]} */
static int load_normalizer(Tok *t, json_t *j, const char *field, char *err, size_t errlen) {
  if (!j || json_is_null(j)) return 0; /* absent: none, as in the reference */
  const char *ty = comp_type(j, t->path, field, err, errlen);
  if (!ty) return -1;
  if (!strcmp(ty, "Sequence")) {
    json_t *a = json_object_get(j, "normalizers");
    if (!json_is_array(a)) return lerr(err, errlen, t->path, field, "Sequence without a \"normalizers\" array");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, i);
      if (load_normalizer(t, json_array_get(a, i), sub, err, errlen)) return -1;
    }
    return 0;
  }
  TokNorm n = {0};
  if (!strcmp(ty, "NFC")) n.kind = TOK_NORM_NFC;
  else if (!strcmp(ty, "NFD")) n.kind = TOK_NORM_NFD;
  else if (!strcmp(ty, "NFKC")) n.kind = TOK_NORM_NFKC;
  else if (!strcmp(ty, "NFKD")) n.kind = TOK_NORM_NFKD;
  else if (!strcmp(ty, "Prepend")) {
    const char *p = json_string_value(json_object_get(j, "prepend"));
    if (!p) return lerr(err, errlen, t->path, field, "Prepend without a string \"prepend\"");
    n.kind = TOK_NORM_PREPEND;
    n.prepend = rc_strdup(p);
  } else
    return lerr(err, errlen, t->path, field,
                "normalizer type \"%s\" is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Sequence)", ty);
  t->norms = rc_realloc(t->norms, (size_t)(t->nnorms + 1) * sizeof *t->norms);
  t->norms[t->nnorms++] = n;
  return 0;
}

/* pre_tokenizer := null | {"type": "Split", "pattern": {"Regex": R} | {"String": S},
 *                          "behavior": B, "invert": BOOL}
 *                | {"type": "ByteLevel", "add_prefix_space": BOOL, "use_regex": BOOL}
 *                | {"type": "Sequence", "pretokenizers": [pre_tokenizer...]}
 * ByteLevel maps the pieces to its byte alphabet, so it must come last. */
static int load_pre(Tok *t, json_t *j, const char *field, char *err, size_t errlen) {
  if (!j || json_is_null(j)) return 0; /* absent: none, as in the reference */
  const char *ty = comp_type(j, t->path, field, err, errlen);
  if (!ty) return -1;
  if (t->byte_level)
    return lerr(err, errlen, t->path, field, "a pre-tokenizer after ByteLevel is not supported");
  if (!strcmp(ty, "Sequence")) {
    json_t *a = json_object_get(j, "pretokenizers");
    if (!json_is_array(a)) return lerr(err, errlen, t->path, field, "Sequence without a \"pretokenizers\" array");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", field, i);
      if (load_pre(t, json_array_get(a, i), sub, err, errlen)) return -1;
    }
    return 0;
  }
  TokPre p = {0};
  char emsg[400];
  if (!strcmp(ty, "Split")) {
    json_t *pat = json_object_get(j, "pattern");
    const char *rx = json_string_value(json_object_get(pat, "Regex"));
    const char *lit = json_string_value(json_object_get(pat, "String"));
    if (!rx && !lit)
      return lerr(err, errlen, t->path, field, "Split without a pattern {\"Regex\": ...} or {\"String\": ...}");
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *b = json_string_value(json_object_get(j, "behavior"));
    int found = 0;
    for (int k = 0; b && k < 5; k++)
      if (!strcmp(b, names[k])) { p.behavior = (TokSplitBehavior)k; found = 1; }
    if (!found) return lerr(err, errlen, t->path, field, "Split.behavior \"%s\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", b ? b : "(missing)");
    p.kind = TOK_PRE_SPLIT;
    p.invert = get_bool(j, "invert", 0);
    p.re = tok_regex_compile(rx ? rx : lit, !rx, emsg, sizeof emsg);
    if (!p.re) return lerr(err, errlen, t->path, field, "Split.pattern: %s", emsg);
    /* Empty matches under the merging behaviors: the Rust library makes empty pieces that take
     * part in the merging (by Oniguruma's rules for where empty matches fall), the JavaScript
     * port ignores the behavior; refused rather than guessed: here when PCRE2's minimum match
     * length is 0, and at encoding (tok_pre.c) for an empty match of a pattern it misses, such
     * as a bare lookahead. */
    uint32_t minlen = 1;
    pcre2_pattern_info(p.re, PCRE2_INFO_MINLENGTH, &minlen);
    if (!minlen && p.behavior != TOK_SPLIT_REMOVED && p.behavior != TOK_SPLIT_ISOLATED) {
      pcre2_code_free(p.re);
      return lerr(err, errlen, t->path, field,
                  "Split.pattern can match the empty string, which is not supported with behavior \"%s\" "
                  "(supported with Isolated and Removed)", b);
    }
  } else if (!strcmp(ty, "ByteLevel")) {
    p.kind = TOK_PRE_BYTELEVEL;
    p.add_prefix_space = get_bool(j, "add_prefix_space", 1);
    if (get_bool(j, "use_regex", 1)) {
      /* GPT-2's pattern, as the reference's ByteLevel uses it */
      p.re = tok_regex_compile("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                               0, emsg, sizeof emsg);
      if (!p.re) return lerr(err, errlen, t->path, field, "%s", emsg);
    }
    t->byte_level = 1;
  } else
    return lerr(err, errlen, t->path, field,
                "pre-tokenizer type \"%s\" is not supported (supported: Split, ByteLevel, Sequence)", ty);
  p.field = rc_strdup(field);
  t->pres = rc_realloc(t->pres, (size_t)(t->npres + 1) * sizeof *t->pres);
  t->pres[t->npres++] = p;
  return 0;
}

/* Set id's string (vocab or added token). */
static void set_token(Tok *t, int32_t id, const char *s, size_t len) {
  free(t->tokens[id]);
  t->tokens[id] = rc_malloc(len + 1);
  memcpy(t->tokens[id], s, len);
  t->tokens[id][len] = 0;
  t->token_len[id] = (int32_t)len;
  tok_strmap_put(&t->ids, t->tokens, t->token_len, id);
}

static int32_t lookup(const Tok *t, const char *s, size_t len) {
  return tok_strmap_get(&t->ids, t->tokens, t->token_len, s, len);
}

/* model := {"type": "BPE", "vocab": {TOKEN: ID...}, "merges": ["A B"...] | [["A", "B"]...],
 *           "unk_token": null|S, "ignore_merges": BOOL, ...} */
static int load_model(Tok *t, json_t *m, json_t *added, char *err, size_t errlen) {
  const char *ty = comp_type(m, t->path, "model", err, errlen);
  if (!ty) return -1;
  if (strcmp(ty, "BPE"))
    return lerr(err, errlen, t->path, "model.type", "model type \"%s\" is not supported (supported: BPE)", ty);
  json_t *v = json_object_get(m, "dropout");
  if (v && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0.0))
    return lerr(err, errlen, t->path, "model.dropout", "BPE dropout is not supported");
  if (get_bool(m, "byte_fallback", 0))
    return lerr(err, errlen, t->path, "model.byte_fallback", "byte_fallback is not supported");
  static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int k = 0; k < 2; k++) {
    v = json_object_get(m, affixes[k]);
    if (v && !json_is_null(v) && !(json_is_string(v) && !*json_string_value(v))) {
      char f[64];
      snprintf(f, sizeof f, "model.%s", affixes[k]);
      return lerr(err, errlen, t->path, f, "a non-empty %s is not supported", affixes[k]);
    }
  }
  t->ignore_merges = get_bool(m, "ignore_merges", 0);
  json_t *vocab = json_object_get(m, "vocab");
  if (!json_is_object(vocab)) return lerr(err, errlen, t->path, "model.vocab", "missing, or not an object");
  /* the id range: vocabulary and added tokens */
  int64_t maxid = -1;
  const char *key;
  json_t *val;
  json_object_foreach(vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_ID)
      return lerr(err, errlen, t->path, "model.vocab", "\"%s\": the id must be an integer in [0, %d)", key, TOK_MAX_ID);
    if (json_integer_value(val) > maxid) maxid = json_integer_value(val);
  }
  for (size_t i = 0; i < json_array_size(added); i++) {
    json_t *id = json_object_get(json_array_get(added, i), "id");
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= TOK_MAX_ID)
      return lerr(err, errlen, t->path, "added_tokens", "[%zu].id must be an integer in [0, %d)", i, TOK_MAX_ID);
    if (json_integer_value(id) > maxid) maxid = json_integer_value(id);
  }
  t->ntokens = (int32_t)(maxid + 1);
  t->tokens = rc_calloc((size_t)t->ntokens + 1, sizeof *t->tokens);
  t->token_len = rc_calloc((size_t)t->ntokens + 1, sizeof *t->token_len);
  t->is_special = rc_calloc((size_t)t->ntokens + 1, 1);
  t->is_added = rc_calloc((size_t)t->ntokens + 1, 1);
  tok_strmap_init(&t->ids, (size_t)t->ntokens);
  json_object_foreach(vocab, key, val) {
    int32_t id = (int32_t)json_integer_value(val);
    if (t->tokens[id])
      return lerr(err, errlen, t->path, "model.vocab", "\"%s\": id %d is also \"%s\"", key, id, t->tokens[id]);
    set_token(t, id, key, strlen(key));
  }
  const char *unk = json_string_value(json_object_get(m, "unk_token"));
  t->unk_id = unk ? lookup(t, unk, strlen(unk)) : -1;
  if (unk && t->unk_id < 0)
    return lerr(err, errlen, t->path, "model.unk_token", "\"%s\" is not in the vocabulary", unk);

  json_t *merges = json_object_get(m, "merges");
  if (!json_is_array(merges)) return lerr(err, errlen, t->path, "model.merges", "missing, or not an array");
  tok_pairmap_init(&t->merges, json_array_size(merges));
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  for (size_t i = 0; i < json_array_size(merges) && !rc; i++) {
    json_t *e = json_array_get(merges, i);
    const char *a, *b;
    size_t la, lb;
    char f[64];
    snprintf(f, sizeof f, "model.merges[%zu]", i);
    if (json_is_string(e)) { /* "A B": exactly one space */
      a = json_string_value(e);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' ') || sp == a || !sp[1]) {
        rc = lerr(err, errlen, t->path, f, "\"%s\" is not two tokens separated by one space", a);
        break;
      }
      la = (size_t)(sp - a);
      b = sp + 1;
      lb = strlen(b);
    } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
               json_is_string(json_array_get(e, 1))) {
      a = json_string_value(json_array_get(e, 0));
      b = json_string_value(json_array_get(e, 1));
      la = json_string_length(json_array_get(e, 0));
      lb = json_string_length(json_array_get(e, 1));
    } else {
      rc = lerr(err, errlen, t->path, f, "expected \"A B\" or [\"A\", \"B\"]");
      break;
    }
    if (cap < la + lb + 1) buf = rc_realloc(buf, cap = la + lb + 1);
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb);
    int32_t ia = lookup(t, a, la), ib = lookup(t, b, lb), im = lookup(t, buf, la + lb);
    if (ia < 0 || ib < 0 || im < 0) {
      rc = lerr(err, errlen, t->path, f, "\"%.*s\" is not in the vocabulary", (int)(ia < 0 ? la : ib < 0 ? lb : la + lb),
                ia < 0 ? a : ib < 0 ? b : buf);
      break;
    }
    tok_pairmap_put(&t->merges, ia, ib, (int32_t)i, im);
  }
  free(buf);
  return rc;
}

/* added_tokens := [{"id": N, "content": S, "special": B, "lstrip": B, "rstrip": B,
 *                   "normalized": B, "single_word": B}...] */
static int load_added(Tok *t, json_t *a, char *err, size_t errlen) {
  if (!a) return 0;
  if (!json_is_array(a)) return lerr(err, errlen, t->path, "added_tokens", "not an array");
  t->added = rc_calloc(json_array_size(a) + 1, sizeof *t->added);
  for (size_t i = 0; i < json_array_size(a); i++) {
    json_t *e = json_array_get(a, i);
    char f[64];
    snprintf(f, sizeof f, "added_tokens[%zu]", i);
    json_t *c = json_object_get(e, "content");
    if (!json_is_string(c) || !json_string_length(c))
      return lerr(err, errlen, t->path, f, "\"content\" must be a non-empty string");
    if (get_bool(e, "single_word", 0))
      return lerr(err, errlen, t->path, f, "single_word added tokens are not supported");
    int32_t id = (int32_t)json_integer_value(json_object_get(e, "id"));
    if (t->is_added[id]) /* (the entry's string would replace the other's, which it points to) */
      return lerr(err, errlen, t->path, f, "id %d is also the id of an earlier added token", id);
    TokAdded *ad = &t->added[t->nadded++];
    ad->id = id;
    ad->special = get_bool(e, "special", 0);
    ad->lstrip = get_bool(e, "lstrip", 0);
    ad->rstrip = get_bool(e, "rstrip", 0);
    ad->normalized = get_bool(e, "normalized", !ad->special);
    set_token(t, ad->id, json_string_value(c), json_string_length(c));
    ad->content = t->tokens[ad->id];
    ad->len = t->token_len[ad->id];
    t->is_added[ad->id] = 1;
    t->is_special[ad->id] = (uint8_t)ad->special;
  }
  return 0;
}

/* post_processor := null | {"type": "ByteLevel"} | {"type": "TemplateProcessing", "single": [
 *     {"SpecialToken": {"id": S}} | {"Sequence": {"id": "A"}}...], "special_tokens": {...}}
 *   | {"type": "Sequence", "processors": [post_processor...]} */
static int load_post(Tok *t, json_t *j, const char *field, char *err, size_t errlen) {
  if (!j || json_is_null(j)) return 0; /* absent: none, as in the reference */
  const char *ty = comp_type(j, t->path, field, err, errlen);
  if (!ty) return -1;
  if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
  if (!strcmp(ty, "Sequence")) {
    json_t *a = json_object_get(j, "processors");
    if (!json_is_array(a)) return lerr(err, errlen, t->path, field, "Sequence without a \"processors\" array");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.processors[%zu]", field, i);
      if (load_post(t, json_array_get(a, i), sub, err, errlen)) return -1;
    }
    return 0;
  }
  if (strcmp(ty, "TemplateProcessing"))
    return lerr(err, errlen, t->path, field,
                "post-processor type \"%s\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)", ty);
  if (t->has_tmpl) return lerr(err, errlen, t->path, field, "a second TemplateProcessing is not supported");
  json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
  if (!json_is_array(single)) return lerr(err, errlen, t->path, field, "TemplateProcessing without a \"single\" array");
  t->has_tmpl = 1;
  int seqs = 0;
  for (size_t i = 0; i < json_array_size(single); i++) {
    json_t *e = json_array_get(single, i), *st = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
    char f[300];
    snprintf(f, sizeof f, "%s.single[%zu]", field, i);
    if (sq) {
      const char *id = json_string_value(json_object_get(sq, "id"));
      if (!id || strcmp(id, "A")) return lerr(err, errlen, t->path, f, "Sequence.id must be \"A\" in \"single\"");
      t->tmpl = rc_realloc(t->tmpl, (size_t)(t->ntmpl + 1) * sizeof *t->tmpl);
      t->tmpl[t->ntmpl++] = -1;
      seqs++;
      continue;
    }
    const char *name = json_string_value(json_object_get(st, "id"));
    if (!name) return lerr(err, errlen, t->path, f, "expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}");
    json_t *ids = json_object_get(json_object_get(specials, name), "ids");
    size_t nids = json_is_array(ids) ? json_array_size(ids) : 1;
    for (size_t k = 0; k < nids; k++) {
      int32_t id;
      if (json_is_array(ids)) {
        json_t *x = json_array_get(ids, k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= t->ntokens ||
            !t->tokens[json_integer_value(x)]) /* (a hole: an id no token has) */
          return lerr(err, errlen, t->path, f, "special_tokens[\"%s\"].ids[%zu] is not an id of the vocabulary", name, k);
        id = (int32_t)json_integer_value(x);
      } else if ((id = lookup(t, name, strlen(name))) < 0)
        return lerr(err, errlen, t->path, f, "special token \"%s\" is not in the vocabulary", name);
      t->tmpl = rc_realloc(t->tmpl, (size_t)(t->ntmpl + 1) * sizeof *t->tmpl);
      t->tmpl[t->ntmpl++] = id;
    }
  }
  if (seqs != 1) return lerr(err, errlen, t->path, field, "\"single\" must hold the sequence A once");
  return 0;
}

/* decoder := null | {"type": "ByteLevel"} | {"type": "Sequence", "decoders": [decoder...]} */
static int load_decoder(Tok *t, json_t *j, const char *field, char *err, size_t errlen) {
  if (!j || json_is_null(j)) return 0; /* absent: none, as in the reference */
  const char *ty = comp_type(j, t->path, field, err, errlen);
  if (!ty) return -1;
  if (!strcmp(ty, "Sequence")) {
    json_t *a = json_object_get(j, "decoders");
    if (!json_is_array(a)) return lerr(err, errlen, t->path, field, "Sequence without a \"decoders\" array");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.decoders[%zu]", field, i);
      if (load_decoder(t, json_array_get(a, i), sub, err, errlen)) return -1;
    }
    return 0;
  }
  if (strcmp(ty, "ByteLevel") || t->decoder_bytelevel)
    return lerr(err, errlen, t->path, field, "decoder type \"%s\" is not supported (supported: ByteLevel, once, or in a Sequence)", ty);
  t->decoder_bytelevel = 1;
  return 0;
}

/* A token of tokenizer_config.json: a string, or an object with "content". */
static char *config_token(json_t *v) {
  if (json_is_object(v)) v = json_object_get(v, "content");
  return json_is_string(v) ? rc_strdup(json_string_value(v)) : NULL;
}

static int load_config(Tok *t, const char *cpath, char *err, size_t errlen) {
  struct stat st;
  if (stat(cpath, &st)) return 0; /* optional */
  char emsg[512];
  size_t len;
  char *text = read_json_file(cpath, &len, emsg, sizeof emsg);
  if (!text) return snprintf(err, errlen, "%s", emsg), -1;
  json_error_t je;
  json_t *c = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length: 1e30 */
  free(text);
  if (!json_is_object(c)) {
    json_decref(c);
    return c ? lerr(err, errlen, cpath, "(top)", "not a JSON object")
             : lerr(err, errlen, cpath, "(JSON)", "line %d column %d: %s", je.line, je.column, je.text);
  }
  json_t *ct = json_object_get(c, "chat_template");
  if (json_is_string(ct)) t->chat_template = rc_strdup(json_string_value(ct));
  else if (json_is_array(ct)) /* named templates: the "default" one */
    for (size_t i = 0; i < json_array_size(ct); i++) {
      json_t *e = json_array_get(ct, i);
      const char *name = json_string_value(json_object_get(e, "name"));
      const char *tpl = json_string_value(json_object_get(e, "template"));
      if (name && tpl && !strcmp(name, "default")) t->chat_template = rc_strdup(tpl);
    }
  t->bos_token = config_token(json_object_get(c, "bos_token"));
  t->eos_token = config_token(json_object_get(c, "eos_token"));
  json_decref(c);
  return 0;
}

static int load_json(Tok *t, json_t *j, char *err, size_t errlen) {
  if (!json_is_object(j)) return lerr(err, errlen, t->path, "(top)", "not a JSON object");
  static const char *const unsupported[] = {"truncation", "padding"};
  for (int k = 0; k < 2; k++) {
    json_t *v = json_object_get(j, unsupported[k]);
    if (v && !json_is_null(v)) return lerr(err, errlen, t->path, unsupported[k], "must be null (not supported)");
  }
  json_t *model = json_object_get(j, "model");
  if (!model) return lerr(err, errlen, t->path, "model", "missing");
  json_t *added = json_object_get(j, "added_tokens");
  if (added && !json_is_array(added)) return lerr(err, errlen, t->path, "added_tokens", "not an array");
  if (load_model(t, model, added, err, errlen) || load_added(t, added, err, errlen) ||
      load_normalizer(t, json_object_get(j, "normalizer"), "normalizer", err, errlen) ||
      load_pre(t, json_object_get(j, "pre_tokenizer"), "pre_tokenizer", err, errlen) ||
      load_post(t, json_object_get(j, "post_processor"), "post_processor", err, errlen) ||
      load_decoder(t, json_object_get(j, "decoder"), "decoder", err, errlen))
    return -1;
  if (tok_added_index(t, err, errlen)) return -1;
  tok_bytelevel_init(t);
  return 0;
}

Tok *tok_load(const char *path, char *err, size_t errlen) {
  struct stat st;
  size_t n = strlen(path);
  char *json_path = rc_malloc(n + 32), *cfg_path = rc_malloc(n + 32);
  if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
    snprintf(json_path, n + 32, "%s/tokenizer.json", path);
    snprintf(cfg_path, n + 32, "%s/tokenizer_config.json", path);
  } else {
    memcpy(json_path, path, n + 1);
    const char *slash = strrchr(path, '/');
    snprintf(cfg_path, n + 32, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
  }
  Tok *t = rc_calloc(1, sizeof *t);
  t->path = json_path;
  t->unk_id = -1;
  char emsg[512];
  size_t len;
  char *text = read_json_file(json_path, &len, emsg, sizeof emsg);
  int rc = -1;
  if (!text) {
    snprintf(err, errlen, "%s", emsg);
  } else {
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    free(text);
    if (!j)
      lerr(err, errlen, json_path, "(JSON)", "line %d column %d: %s", je.line, je.column, je.text);
    else
      rc = load_json(t, j, err, errlen);
    json_decref(j);
  }
  if (!rc) rc = load_config(t, cfg_path, err, errlen);
  free(cfg_path);
  if (rc) {
    tok_free(t);
    return NULL;
  }
  t->md = pcre2_match_data_create(32, NULL);
  return t;
}

void tok_free(Tok *t) {
  if (!t) return;
  for (int32_t i = 0; i < t->ntokens; i++) free(t->tokens[i]);
  free(t->tokens);
  free(t->token_len);
  free(t->is_special);
  free(t->is_added);
  tok_strmap_free(&t->ids);
  tok_pairmap_free(&t->merges);
  for (int i = 0; i < t->nnorms; i++) free(t->norms[i].prepend);
  free(t->norms);
  for (int i = 0; i < t->npres; i++) {
    pcre2_code_free(t->pres[i].re);
    free(t->pres[i].field);
  }
  free(t->pres);
  for (int i = 0; i < t->nadded; i++) free(t->added[i].norm_content);
  free(t->added);
  for (int b = 0; b < 256; b++) free(t->first_idx[b]);
  free(t->tmpl);
  free(t->chat_template);
  free(t->bos_token);
  free(t->eos_token);
  tok_cache_free(&t->cache);
  free(t->sym_id);
  free(t->sym_prev);
  free(t->sym_next);
  free(t->heap);
  free(t->mapped);
  if (t->md) pcre2_match_data_free(t->md);
  free(t->path);
  free(t);
}
