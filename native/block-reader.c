/*
 * ringkv's optional native block reader: one thread-pool task reads a
 * compressed SSTable data block, checks its crc and decompresses it (LZ4
 * block format, with the table's dictionary), so that an uncached lz4 read
 * costs the event loop what an uncompressed one does: one trip to the pool.
 * Without it (no C compiler at install), src/storage/sstable/native-reader.ts
 * falls back to a read on the pool and the decompression on the event loop.
 *
 * readCompressedBlock(fd, position, storedBytes, rawBytes, dictionary)
 *   -> Promise<Buffer of rawBytes>
 * The stored block is `codec output | u32 LE crc32 of it`; the codec output
 * is lz4-napi's framing: a u32 LE raw size, then one LZ4 block whose matches
 * may reach back into the dictionary as if it preceded the output.
 * Rejections carry `errno` (the read failed) or `corrupt` (a reason to be
 * reported with the file and offset by the caller).
 *
 * Every length and offset in the input is checked before it is used: a
 * damaged block is reported, never read or written out of bounds.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Little-endian u32, whatever the alignment. */
static inline uint32_t read_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The crc32 the writer uses (node:zlib's): zlib's own, which Node exports to addons. */
static inline uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  return (uint32_t)crc32(0L, p, (uInt)n);
}

/* ---- LZ4 block decoding, external dictionary. Returns NULL, or why the input is not a valid block. */

/* A length's extension bytes: each adds its value, 255 means another follows. Stops as soon as the
 * length passes `limit` (nothing that long fits the output), so that it can never wrap around. */
static const char *read_length(const uint8_t **ip, const uint8_t *end, size_t *len, size_t limit,
                               const char *what) {
  unsigned b;
  do {
    if (*ip >= end) return what;
    b = *(*ip)++;
    *len += b;
    if (*len > limit) return "a length runs past the block's size";
  } while (b == 255);
  return NULL;
}

/* Set as the reason when the input is a valid block that is shorter than the announced size; *produced
 * says how long, for the caller's message. */
static const char SHORT_OUTPUT[] = "decodes to fewer bytes than the block's size";

static const char *lz4_decode(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                              const uint8_t *dict, size_t dict_len, size_t *produced) {
  const uint8_t *ip = src;
  const uint8_t *const end = src + src_len;
  size_t op = 0;
  for (;;) {
    if (ip >= end) return "input ends before a sequence";
    const unsigned token = *ip++;
    size_t literals = token >> 4;
    if (literals == 15) {
      const char *err = read_length(&ip, end, &literals, dst_len, "input ends inside a literal length");
      if (err != NULL) return err;
    }
    if (literals > (size_t)(end - ip)) return "literals run past the input";
    if (literals > dst_len - op) return "literals run past the block's size";
    if (literals <= 16 && end - ip >= 16 && dst_len - op >= 16) {
      /* One fixed-size copy (two vector moves) for the common short run; the bytes past the run
       * are inside both buffers and are overwritten by what follows. */
      memcpy(dst + op, ip, 16);
    } else if (literals > 0) {
      memcpy(dst + op, ip, literals);
    }
    ip += literals;
    op += literals;
    if (ip == end) break; /* the last sequence is literals only */
    if (end - ip < 2) return "input ends inside a match offset";
    const size_t offset = (size_t)ip[0] | ((size_t)ip[1] << 8);
    ip += 2;
    if (offset == 0) return "match offset 0";
    size_t length = token & 15;
    if (length == 15) {
      const char *err = read_length(&ip, end, &length, dst_len, "input ends inside a match length");
      if (err != NULL) return err;
    }
    length += 4;
    if (length > dst_len - op) return "match runs past the block's size";
    if (offset > op + dict_len) return "match offset reaches before the dictionary";
    if (offset > op) {
      /* The match starts in the dictionary's tail and may run on into the output. */
      const size_t back = offset - op;
      const size_t n = back < length ? back : length;
      memcpy(dst + op, dict + dict_len - back, n);
      op += n;
      length -= n;
    }
    if (length == 0) continue;
    uint8_t *to = dst + op;
    const uint8_t *from = to - offset;
    if (offset >= 16 && dst_len - op >= length + 16) {
      /* Far enough back that 16-byte steps never read what they write; may run up to 15 bytes
       * past the match, still inside the output, and those are overwritten next. */
      for (size_t k = 0; k < length; k += 16) memcpy(to + k, from + k, 16);
    } else if (offset >= length) {
      memcpy(to, from, length);
    } else {
      /* Overlapping: the match repeats the bytes it is writing. */
      for (size_t k = 0; k < length; k++) to[k] = from[k];
    }
    op += length;
  }
  *produced = op;
  return op == dst_len ? NULL : SHORT_OUTPUT;
}

/* ---- The read, in the thread pool. */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref out_ref;
  napi_ref dict_ref;
  int fd;
  int64_t position;
  size_t stored_bytes;
  size_t raw_bytes;
  const uint8_t *dict;
  size_t dict_len;
  uint8_t *out;
  /* Results: errno_value != 0 is a failed read; otherwise reason != NULL is corruption. */
  int errno_value;
  const char *reason;
  char detail[160];
} BlockRead;

static void block_read_execute(napi_env env, void *data) {
  (void)env;
  BlockRead *req = data;
  uint8_t *stored = malloc(req->stored_bytes > 0 ? req->stored_bytes : 1);
  if (stored == NULL) {
    req->errno_value = ENOMEM;
    return;
  }
  size_t done = 0;
  while (done < req->stored_bytes) {
    ssize_t n = pread(req->fd, stored + done, req->stored_bytes - done, (off_t)(req->position + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      req->errno_value = errno;
      free(stored);
      return;
    }
    if (n == 0) {
      snprintf(req->detail, sizeof req->detail, "truncated: wanted %zu bytes, file ends after %zu",
               req->stored_bytes, done);
      req->reason = req->detail;
      free(stored);
      return;
    }
    done += (size_t)n;
  }
  /* Framed as a section: codec output, then its crc. The checks and their order are the fallback's
   * (format.ts openSection, compression.ts), so that both paths refuse a block with the same words. */
  if (req->stored_bytes < 4) {
    req->reason = "compressed data block section too short";
    free(stored);
    return;
  }
  const size_t payload_bytes = req->stored_bytes - 4;
  const uint32_t crc_stored = read_u32le(stored + payload_bytes);
  const uint32_t crc_computed = crc32_ieee(stored, payload_bytes);
  if (crc_stored != crc_computed) {
    snprintf(req->detail, sizeof req->detail,
             "compressed data block checksum mismatch: stored %u, computed %u", crc_stored, crc_computed);
    req->reason = req->detail;
  } else if (payload_bytes < 4) {
    req->reason = "data block does not decompress (lz4): size prefix missing";
  } else if (read_u32le(stored) != req->raw_bytes) {
    snprintf(req->detail, sizeof req->detail, "data block does not decompress (lz4): size prefix %u",
             read_u32le(stored));
    req->reason = req->detail;
  } else {
    size_t produced = 0;
    const char *err = lz4_decode(stored + 4, payload_bytes - 4, req->out, req->raw_bytes, req->dict,
                                 req->dict_len, &produced);
    if (err == SHORT_OUTPUT) {
      /* The fallback's words for it (compression.ts). */
      snprintf(req->detail, sizeof req->detail, "data block decompresses to %zu bytes, the index says %zu",
               produced, req->raw_bytes);
      req->reason = req->detail;
    } else if (err != NULL) {
      snprintf(req->detail, sizeof req->detail, "data block does not decompress (lz4): %s", err);
      req->reason = req->detail;
    }
  }
  free(stored);
}

static napi_value make_error(napi_env env, const char *message, const char *flag, napi_value flag_value) {
  napi_value msg, error;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_set_named_property(env, error, flag, flag_value);
  return error;
}

static void block_read_complete(napi_env env, napi_status status, void *data) {
  BlockRead *req = data;
  napi_value out = NULL;
  if (status == napi_ok && napi_get_reference_value(env, req->out_ref, &out) != napi_ok) status = napi_generic_failure;
  if (status != napi_ok) {
    napi_value flag;
    napi_create_int32(env, ECANCELED, &flag);
    napi_reject_deferred(env, req->deferred, make_error(env, "block read cancelled", "errno", flag));
  } else if (req->errno_value != 0) {
    napi_value flag;
    napi_create_int32(env, req->errno_value, &flag);
    napi_reject_deferred(env, req->deferred, make_error(env, strerror(req->errno_value), "errno", flag));
  } else if (req->reason != NULL) {
    napi_value flag;
    napi_get_boolean(env, true, &flag);
    napi_reject_deferred(env, req->deferred, make_error(env, req->reason, "corrupt", flag));
  } else {
    napi_resolve_deferred(env, req->deferred, out);
  }
  napi_delete_reference(env, req->out_ref);
  napi_delete_reference(env, req->dict_ref);
  napi_delete_async_work(env, req->work);
  free(req);
}

#define CHECK(call, message)                        \
  do {                                              \
    if ((call) != napi_ok) {                        \
      napi_throw_type_error(env, NULL, message);    \
      goto fail;                                    \
    }                                               \
  } while (0)

static napi_value read_compressed_block(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_value promise = NULL;
  BlockRead *req = calloc(1, sizeof *req);
  if (req == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "bad call");
  if (argc != 5) {
    napi_throw_type_error(env, NULL, "readCompressedBlock takes 5 arguments");
    goto fail;
  }
  int32_t fd;
  int64_t position, stored_bytes, raw_bytes;
  CHECK(napi_get_value_int32(env, argv[0], &fd), "fd must be a number");
  CHECK(napi_get_value_int64(env, argv[1], &position), "position must be a number");
  CHECK(napi_get_value_int64(env, argv[2], &stored_bytes), "storedBytes must be a number");
  CHECK(napi_get_value_int64(env, argv[3], &raw_bytes), "rawBytes must be a number");
  if (fd < 0 || position < 0 || stored_bytes < 0 || raw_bytes <= 0 || stored_bytes > (1 << 30) ||
      raw_bytes > (1 << 30)) {
    napi_throw_range_error(env, NULL, "readCompressedBlock: argument out of range");
    goto fail;
  }
  /* The dictionary is read from the pool thread: it must not be detached or transferred while a read
   * is queued. ringkv's dictionaries are views into a table's index, which lives as long as the table. */
  void *dict_data;
  size_t dict_len;
  CHECK(napi_get_buffer_info(env, argv[4], &dict_data, &dict_len), "dictionary must be a Buffer");
  req->fd = fd;
  req->position = position;
  req->stored_bytes = (size_t)stored_bytes;
  req->raw_bytes = (size_t)raw_bytes;
  req->dict = dict_data;
  req->dict_len = dict_len;
  /* The output is a Buffer with memory of its own (a cached block pins only itself), kept alive by a
   * reference while the pool writes into it; so is the dictionary while the pool reads it. */
  napi_value out;
  void *out_data;
  CHECK(napi_create_buffer(env, req->raw_bytes, &out_data, &out), "cannot allocate the block");
  req->out = out_data;
  CHECK(napi_create_reference(env, out, 1, &req->out_ref), "cannot hold the block");
  CHECK(napi_create_reference(env, argv[4], 1, &req->dict_ref), "cannot hold the dictionary");
  napi_value name;
  CHECK(napi_create_string_utf8(env, "ringkv.readCompressedBlock", NAPI_AUTO_LENGTH, &name), "bad name");
  CHECK(napi_create_async_work(env, NULL, name, block_read_execute, block_read_complete, req, &req->work),
        "cannot create the read");
  CHECK(napi_create_promise(env, &req->deferred, &promise), "cannot create a promise");
  if (napi_queue_async_work(env, req->work) != napi_ok) {
    /* The promise exists and the caller will hold it: it carries the failure, nothing is thrown. */
    napi_value msg, error;
    napi_create_string_utf8(env, "block read not queued", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, req->deferred, error);
    napi_delete_reference(env, req->out_ref);
    napi_delete_reference(env, req->dict_ref);
    napi_delete_async_work(env, req->work);
    free(req);
    return promise;
  }
  return promise;
fail:
  /* Reached with an exception pending and before any promise exists. */
  if (req->out_ref != NULL) napi_delete_reference(env, req->out_ref);
  if (req->dict_ref != NULL) napi_delete_reference(env, req->dict_ref);
  if (req->work != NULL) napi_delete_async_work(env, req->work);
  free(req);
  return NULL;
}

/* For the tests: decodes an lz4-napi output (size prefix + block) synchronously, or throws with the reason. */
static napi_value decode_lz4(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *src, *dict, *dst;
  size_t src_len, dict_len;
  napi_value out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_buffer_info(env, argv[0], &src, &src_len) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &dict, &dict_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "decodeLz4(compressed: Buffer, dictionary: Buffer)");
    return NULL;
  }
  if (src_len < 4) {
    napi_throw_error(env, NULL, "size prefix missing");
    return NULL;
  }
  const size_t raw_bytes = read_u32le(src);
  if (raw_bytes > (1u << 30) || napi_create_buffer(env, raw_bytes, &dst, &out) != napi_ok) {
    napi_throw_error(env, NULL, "size prefix too large");
    return NULL;
  }
  size_t produced = 0;
  const char *err = lz4_decode((const uint8_t *)src + 4, src_len - 4, dst, raw_bytes, dict, dict_len, &produced);
  if (err != NULL) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  return out;
}

/* For the tests: the crc32 the reader checks, to compare with zlib's. */
static napi_value crc32_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data;
  size_t len;
  napi_value out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "crc32(data: Buffer)");
    return NULL;
  }
  napi_create_uint32(env, crc32_ieee(data, len), &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"readCompressedBlock", NULL, read_compressed_block, NULL, NULL, NULL, napi_default, NULL},
      {"decodeLz4", NULL, decode_lz4, NULL, NULL, NULL, napi_default, NULL},
      {"crc32", NULL, crc32_js, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
