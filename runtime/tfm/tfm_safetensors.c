/* tfm_safetensors.c — reading and writing the safetensors format for the transformer executor.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
 * (offsets relative to its start).  Reading trusts nothing in the file: every length and offset
 * is checked against the file's size and the model's expected shape before a byte of data is
 * touched, and every message names the file and the tensor.  F32, BF16 and F16 are converted to
 * tfm_f.  Writing produces F32, BF16 or F16 (rounded to nearest even, through float32), to a
 * temporary name renamed over the target.  The optimizer state is F32, with the parameters
 * themselves as NAME.master when the model file was rounded.
 */
#include "tfm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20)

static float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, man = h & 1023, u;
  if (e == 0) {
    if (man == 0) {
      u = sign;
    } else { /* subnormal: normalize */
      e = 127 - 15 + 1;
      while (!(man & 1024)) {
        man <<= 1;
        e--;
      }
      u = sign | (e << 23) | ((man & 1023) << 13);
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((e + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

int tfm_dtype_parse(const char *s) {
  static const char *const names[] = {"f32", "bf16", "f16"};
  if (!strcmp(s, "same")) return TFM_DT_SAME;
  for (int i = 0; i < TFM_NDT; i++)
    if (!strcmp(s, names[i])) return i;
  return -2;
}

const char *tfm_dtype_name(int dt) {
  static const char *const names[] = {"F32", "BF16", "F16"};
  return dt >= 0 && dt < TFM_NDT ? names[dt] : "?";
}

uint16_t tfm_f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN: quiet */
  u += 0x7fffu + ((u >> 16) & 1);  /* to nearest, ties to even; carries into the exponent */
  return (uint16_t)(u >> 16);
}

uint16_t tfm_f32_to_f16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t sign = (u >> 16) & 0x8000u, e = (u >> 23) & 0xff, man = u & 0x7fffffu;
  if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0)); /* inf, NaN */
  int E = (int)e - 127 + 15;
  if (E >= 31) return (uint16_t)(sign | 0x7c00u);  /* overflow */
  uint32_t h, rem, half;
  if (E <= 0) {                                      /* a subnormal half, or zero */
    if (E < -10) return (uint16_t)sign;              /* below half the smallest subnormal */
    man |= 0x800000u;
    int shift = 14 - E;                              /* the value in units of 2^-24 */
    h = man >> shift;
    rem = man & ((1u << shift) - 1);
    half = 1u << (shift - 1);
  } else {
    h = ((uint32_t)E << 10) | (man >> 13);
    rem = man & 0x1fffu;
    half = 0x1000u;
  }
  if (rem > half || (rem == half && (h & 1))) h++;   /* a carry may reach infinity: right */
  return (uint16_t)(sign | h);
}

/* Read exactly n bytes at offset off. */
static int read_at(int fd, void *buf, size_t n, off_t off) {
  char *p = buf;
  while (n) {
    ssize_t k = pread(fd, p, n, off);
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
    off += k;
  }
  return 0;
}

typedef struct {
  uint64_t b, end;
  const char *name;
} Range;

static int range_cmp(const void *x, const void *y) {
  const Range *a = x, *b = y;
  return a->b < b->b ? -1 : a->b > b->b;
}

static int is_ignored(const TfmModel *m, const char *name) {
  size_t n = strlen(name);
  const char *sfx = "rotary_emb.inv_freq";
  if (n >= strlen(sfx) && !strcmp(name + n - strlen(sfx), sfx)) return 1;
  return m->cfg.tie_embeddings && !strcmp(name, "lm_head.weight");
}

/* The tensor that `name` denotes: tensor name + the suffix of one of the nsets sets.  Returns the
 * tensor index and sets *set, or -1. */
static int find_tensor(const TfmModel *m, int nsets, const char *const *sfx, const char *name, int *set) {
  size_t ln = strlen(name);
  for (int s = 0; s < nsets; s++) {
    size_t ls = strlen(sfx[s]);
    if (ln < ls || strcmp(name + ln - ls, sfx[s])) continue;
    for (int i = 0; i < m->ntensors; i++)
      if (strlen(m->tensors[i].name) == ln - ls && !strncmp(m->tensors[i].name, name, ln - ls)) {
        *set = s;
        return i;
      }
  }
  return -1;
}

/* Check one header entry against the model; returns the entry's index (set * ntensors +
 * tensor), -2 to skip, -1 on error. */
static int check_entry(const TfmModel *m, int nsets, const char *const *sfx, const char *path,
                       const char *name, json_t *e, uint64_t datasize, int *esize, uint64_t *b,
                       uint64_t *end, char *err, size_t errlen) {
  int set = 0, ti = find_tensor(m, nsets, sfx, name, &set);
  if (ti < 0) {
    if (!sfx[0][0] && is_ignored(m, name)) {
      json_t *of = json_object_get(e, "data_offsets");
      json_t *jb = json_array_get(of, 0), *je = json_array_get(of, 1);
      if (!json_is_array(of) || json_array_size(of) != 2 || !json_is_integer(jb) || !json_is_integer(je) ||
          json_integer_value(jb) < 0 || json_integer_value(je) < json_integer_value(jb) ||
          (uint64_t)json_integer_value(je) > datasize) {
        snprintf(err, errlen, "%s: tensor '%s': bad data_offsets", path, name);
        return -1;
      }
      *b = (uint64_t)json_integer_value(jb);
      *end = (uint64_t)json_integer_value(je);
      return -2;
    }
    snprintf(err, errlen, "%s: tensor '%s': unexpected (not part of a model with this config)", path, name);
    return -1;
  }
  const TfmTensor *t = &m->tensors[ti];
  json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
         *of = json_object_get(e, "data_offsets");
  if (!json_is_object(e) || !json_is_string(dt) || !json_is_array(sh) || !json_is_array(of) ||
      json_array_size(of) != 2) {
    snprintf(err, errlen, "%s: tensor '%s': header entry needs \"dtype\", \"shape\" and two \"data_offsets\"", path, name);
    return -1;
  }
  const char *d = json_string_value(dt);
  if (!strcmp(d, "F32")) *esize = 4;
  else if (!strcmp(d, "BF16") || !strcmp(d, "F16")) *esize = 2;
  else {
    snprintf(err, errlen, "%s: tensor '%s': dtype %s is not supported (F32, BF16, F16)", path, name, d);
    return -1;
  }
  if (*esize == 2 && !strcmp(d, "F16")) *esize = -2; /* F16 marker */
  char got[128] = "", want[64];
  int bad = (int)json_array_size(sh) != t->ndim;
  size_t n = 1;
  for (size_t i = 0; i < json_array_size(sh); i++) {
    json_t *x = json_array_get(sh, i);
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1ll << 40)) {
      snprintf(err, errlen, "%s: tensor '%s': shape entries must be non-negative integers", path, name);
      return -1;
    }
    if (i < 2 && (int)i < t->ndim && json_integer_value(x) != t->shape[i]) bad = 1;
    n *= (size_t)json_integer_value(x);
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, "%s%lld", i ? "," : "", (long long)json_integer_value(x));
  }
  if (t->ndim == 2) snprintf(want, sizeof want, "%lld,%lld", (long long)t->shape[0], (long long)t->shape[1]);
  else snprintf(want, sizeof want, "%lld", (long long)t->shape[0]);
  if (bad) {
    snprintf(err, errlen, "%s: tensor '%s': shape [%s], expected [%s] from the config", path, name, got, want);
    return -1;
  }
  json_t *jb = json_array_get(of, 0), *je = json_array_get(of, 1);
  if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
      json_integer_value(je) < json_integer_value(jb)) {
    snprintf(err, errlen, "%s: tensor '%s': bad data_offsets", path, name);
    return -1;
  }
  *b = (uint64_t)json_integer_value(jb);
  *end = (uint64_t)json_integer_value(je);
  int es = *esize < 0 ? 2 : *esize;
  if (*end - *b != (uint64_t)n * (uint64_t)es) {
    snprintf(err, errlen, "%s: tensor '%s': data_offsets span %llu bytes, shape [%s] of %s needs %llu", path,
             name, (unsigned long long)(*end - *b), got, d, (unsigned long long)n * (unsigned long long)es);
    return -1;
  }
  if (*end > datasize) {
    snprintf(err, errlen, "%s: tensor '%s': data_offsets end at %llu, past the end of the data (%llu bytes): truncated file or a lying header",
             path, name, (unsigned long long)*end, (unsigned long long)datasize);
    return -1;
  }
  return set * m->ntensors + ti;
}

/* Read the nsets tensor sets named NAME + sfx[s] into dst[s] (laid out as m's tensors);
 * seen: nsets * ntensors flags; counts (NULL or TFM_NDT): elements read per dtype.  *step (when not NULL) gets the metadata's "step" (0 if none). */
static int st_read_sets(TfmModel *m, const char *path, int nsets, tfm_f *const *dst, const char *const *sfx,
                        unsigned char *seen, size_t *counts, long *step, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    return -1;
  }
  struct stat st;
  char *hdr = NULL;
  void *buf = NULL;
  json_t *o = NULL;
  Range *ranges = NULL;
  int rc = -1;
  uint64_t hlen = 0;
  unsigned char lenb[8];
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: not a regular file", path);
    goto done;
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < 8 || read_at(fd, lenb, 8, 0)) {
    snprintf(err, errlen, "%s: truncated: %llu bytes, shorter than the 8-byte header length", path, (unsigned long long)size);
    goto done;
  }
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
  if (hlen > size - 8 || hlen > ST_MAX_HEADER) {
    snprintf(err, errlen, "%s: header length %llu exceeds the file size (%llu bytes): truncated or not safetensors",
             path, (unsigned long long)hlen, (unsigned long long)size);
    goto done;
  }
  hdr = rc_malloc(hlen + 1);
  if (read_at(fd, hdr, hlen, 8)) {
    snprintf(err, errlen, "%s: read error", path);
    goto done;
  }
  hdr[hlen] = 0;
  json_error_t je;
  o = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &je);
  if (!o || !json_is_object(o)) {
    snprintf(err, errlen, "%s: header is not a JSON object (%s)", path, o ? "other JSON value" : je.text);
    goto done;
  }
  uint64_t datasize = size - 8 - hlen;
  const char *name;
  json_t *e;
  /* First pass: every entry checked, and no two data ranges may overlap. */
  size_t nent = json_object_size(o), nr = 0;
  ranges = rc_malloc((nent + 1) * sizeof *ranges);
  json_object_foreach(o, name, e) {
    if (!strcmp(name, "__metadata__")) continue;
    int esize;
    uint64_t b = 0, end = 0;
    int ti = check_entry(m, nsets, sfx, path, name, e, datasize, &esize, &b, &end, err, errlen);
    if (ti == -1) goto done;
    if (end > b) ranges[nr++] = (Range){b, end, name};
  }
  /* The format: the data offsets tile the data buffer exactly, with no overlap, gap or trailing
   * byte, so a header length or an offset that is off by any amount cannot shift tensors. */
  qsort(ranges, nr, sizeof *ranges, range_cmp);
  uint64_t at = 0;
  for (size_t i = 0; i < nr; i++) {
    if (ranges[i].b < at) {
      snprintf(err, errlen, "%s: tensor '%s': data overlaps tensor '%s'", path, ranges[i].name, ranges[i - 1].name);
      goto done;
    }
    if (ranges[i].b > at) {
      snprintf(err, errlen,
               "%s: tensor '%s': data_offsets start at byte %llu, leaving %llu unused bytes before it "
               "(tensors must tile the data buffer exactly)",
               path, ranges[i].name, (unsigned long long)ranges[i].b, (unsigned long long)(ranges[i].b - at));
      goto done;
    }
    at = ranges[i].end;
  }
  if (at != datasize) {
    snprintf(err, errlen,
             "%s: %llu bytes after the end of the last tensor's data (tensors must tile the data buffer "
             "exactly: is the header length right?)",
             path, (unsigned long long)(datasize - at));
    goto done;
  }
  json_object_foreach(o, name, e) {
    if (!strcmp(name, "__metadata__")) continue;
    int esize;
    uint64_t b, end;
    int ti = check_entry(m, nsets, sfx, path, name, e, datasize, &esize, &b, &end, err, errlen);
    if (ti == -2) continue;
    if (ti < 0) goto done;
    if (seen[ti]) {
      snprintf(err, errlen, "%s: tensor '%s': appears twice", path, name);
      goto done;
    }
    seen[ti] = 1;
    const TfmTensor *t = &m->tensors[ti % m->ntensors];
    free(buf);
    buf = rc_malloc(end - b + 1);
    if (!buf || read_at(fd, buf, end - b, (off_t)(8 + hlen + b))) {
      snprintf(err, errlen, "%s: tensor '%s': read error", path, name);
      goto done;
    }
    tfm_f *out = dst[ti / m->ntensors] + t->off;
    if (counts) counts[esize == 4 ? TFM_DT_F32 : esize == 2 ? TFM_DT_BF16 : TFM_DT_F16] += t->n;
    for (size_t i = 0; i < t->n; i++) {
      float v;
      if (esize == 4) {
        memcpy(&v, (char *)buf + 4 * i, 4);
      } else {
        uint16_t h;
        memcpy(&h, (char *)buf + 2 * i, 2);
        v = esize == 2 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      out[i] = v;
    }
  }
  if (step) {
    json_t *st = json_object_get(json_object_get(o, "__metadata__"), "step");
    char *endp = NULL;
    *step = json_is_string(st) ? strtol(json_string_value(st), &endp, 10) : 0;
    if (json_is_string(st) && (*endp || *step < 0)) {
      snprintf(err, errlen, "%s: field '__metadata__.step': not a step count", path);
      goto done;
    }
  }
  rc = 0;
done:
  json_decref(o);
  free(ranges);
  free(hdr);
  free(buf);
  close(fd);
  return rc;
}

int tfm_st_read(TfmModel *m, const char *path, unsigned char *seen, size_t *counts, char *err, size_t errlen) {
  static const char *const sfx[] = {""};
  tfm_f *dst[] = {m->params};
  return st_read_sets(m, path, 1, dst, sfx, seen, counts, NULL, err, errlen);
}

static const char *const OPT_SFX[] = {".exp_avg", ".exp_avg_sq", ".master"};

int tfm_opt_load(TfmModel *m, const char *path, char *err, size_t errlen) {
  if (!m->opt) m->opt = rc_calloc(2 * m->nparams, sizeof(tfm_f));
  /* The masters are read aside: the parameters change only once the whole file is good. */
  tfm_f *master = rc_malloc((m->nparams + 1) * sizeof(tfm_f));
  tfm_f *dst[] = {m->opt, m->opt + m->nparams, master};
  int nt = m->ntensors;
  unsigned char *seen = rc_calloc(3 * (size_t)nt, 1);
  long step = 0;
  int rc = master ? st_read_sets(m, path, 3, dst, OPT_SFX, seen, NULL, &step, err, errlen) : -1;
  if (!master) snprintf(err, errlen, "%s: out of memory for the master weights", path);
  int nmaster = 0;
  for (int i = 0; i < nt; i++) nmaster += seen[2 * nt + i];
  for (int i = 0; !rc && i < 3 * nt; i++)
    if (!seen[i] && (i < 2 * nt || nmaster)) {
      snprintf(err, errlen, "%s: tensor '%s%s': missing", path, m->tensors[i % nt].name, OPT_SFX[i / nt]);
      rc = -1;
    }
  free(seen);
  if (!rc) {
    m->step = step;
    if (nmaster) memcpy(m->params, master, m->nparams * sizeof(tfm_f));
  }
  free(master);
  return rc;
}

/* Write nsets tensor sets (vals[s] laid out as m's tensors, named NAME + sfx[s]) in dtype, with
 * "step" in the metadata when step >= 0. */
static int st_write_sets(const TfmModel *m, int nsets, const tfm_f *const *vals, const char *const *sfx,
                         int dtype, long step, const char *path, char *err, size_t errlen) {
  if (dtype < 0 || dtype >= TFM_NDT) {
    snprintf(err, errlen, "%s: no dtype %d to write", path, dtype);
    return -1;
  }
  unsigned es = dtype == TFM_DT_F32 ? 4 : 2;
  json_t *h = json_object();
  json_t *meta = json_pack("{s:s}", "format", "pt");
  if (step >= 0) {
    char sb[32];
    snprintf(sb, sizeof sb, "%ld", step);
    json_object_set_new(meta, "step", json_string(sb));
  }
  json_object_set_new(h, "__metadata__", meta);
  uint64_t off = 0;
  for (int s = 0; s < nsets; s++)
    for (int i = 0; i < m->ntensors; i++) {
      const TfmTensor *t = &m->tensors[i];
      char nm[128];
      snprintf(nm, sizeof nm, "%s%s", t->name, sfx[s]);
      json_t *shape = t->ndim == 2 ? json_pack("[I,I]", (json_int_t)t->shape[0], (json_int_t)t->shape[1])
                                   : json_pack("[I]", (json_int_t)t->shape[0]);
      json_object_set_new(h, nm, json_pack("{s:s,s:o,s:[I,I]}", "dtype", tfm_dtype_name(dtype), "shape", shape,
                                           "data_offsets", (json_int_t)off, (json_int_t)(off + es * t->n)));
      off += es * t->n;
    }
  char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(h);
  size_t tl = strlen(text), padded = (tl + 7) & ~(size_t)7;
  char tmp[4200];
  FILE *f = rc_open_tmp(path, tmp, sizeof tmp, err, errlen);
  if (!f) {
    free(text);
    return -1;
  }
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  int bad = fwrite(lenb, 1, 8, f) != 8 || fwrite(text, 1, tl, f) != tl;
  for (size_t i = tl; i < padded; i++) bad |= fputc(' ', f) == EOF;
  free(text);
  float chunk[4096];
  uint16_t half[4096];
  for (int i = 0; i < nsets * m->ntensors && !bad; i++) {
    const TfmTensor *t = &m->tensors[i % m->ntensors];
    const tfm_f *values = vals[i / m->ntensors];
    for (size_t j = 0; j < t->n && !bad; j += 4096) {
      size_t k = t->n - j < 4096 ? t->n - j : 4096;
      for (size_t q = 0; q < k; q++) chunk[q] = (float)values[t->off + j + q];
      if (dtype == TFM_DT_BF16)
        for (size_t q = 0; q < k; q++) half[q] = tfm_f32_to_bf16(chunk[q]);
      else if (dtype == TFM_DT_F16)
        for (size_t q = 0; q < k; q++) half[q] = tfm_f32_to_f16(chunk[q]);
      bad |= es == 4 ? fwrite(chunk, 4, k, f) != k : fwrite(half, 2, k, f) != k;
    }
  }
  return rc_commit_file(f, bad, tmp, path, err, errlen);
}

int tfm_st_write(const TfmModel *m, const tfm_f *values, int dtype, const char *path, char *err,
                 size_t errlen) {
  static const char *const sfx[] = {""};
  return st_write_sets(m, 1, &values, sfx, dtype, -1, path, err, errlen);
}

int tfm_opt_save(const TfmModel *m, const char *path, int masters, char *err, size_t errlen) {
  if (!m->opt) {
    snprintf(err, errlen, "%s: no optimizer state to save (no step taken)", path);
    return -1;
  }
  const tfm_f *vals[] = {m->opt, m->opt + m->nparams, m->params};
  return st_write_sets(m, masters ? 3 : 2, vals, OPT_SFX, TFM_DT_F32, m->step, path, err, errlen);
}
