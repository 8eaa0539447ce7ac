/**
 * Micro benchmarks of ringkv's hot helpers: the current implementation (from
 * the compiled project, first in each list) against candidates. A candidate
 * that wins here by a wide margin is worth trying in the real path, where
 * the end-to-end benchmarks decide.
 */
import { randomFillSync } from 'node:crypto';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { makeDocuments } from '../lib/json-docs.mjs';
import { sameResults } from './harness.mjs';

const N = 1024; // inputs cycled through, so no single input stays hot in a branch predictor

function randomBuffers(count, bytes) {
  return Array.from({ length: count }, () => randomFillSync(Buffer.allocUnsafe(bytes)));
}

/** Keys shaped like the load generator's: a shared prefix and 15 decimal digits. */
function decimalKeys(count) {
  return Array.from({ length: count }, (_, i) =>
    Buffer.from(`k${String((i * 7919) % 1000003).padStart(15, '0')}`, 'latin1'),
  );
}

function compareLoop(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * An LZ4 block decoder in plain JS (the block format: literal runs and
 * back-references, the dictionary as the bytes before the output), the
 * candidate against lz4-napi's native one on the read path.
 */
function lz4DecodeJs(src, out, dict) {
  let s = 4; // past lz4-napi's u32 size prefix
  let o = 0;
  for (;;) {
    const token = src[s++];
    let literals = token >>> 4;
    if (literals === 15) for (let b = 255; b === 255; literals += b) b = src[s++];
    if (literals < 16) for (let i = 0; i < literals; i++) out[o + i] = src[s + i];
    else src.copy(out, o, s, s + literals);
    s += literals;
    o += literals;
    if (s >= src.length) return out;
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    let length = (token & 15) + 4;
    if ((token & 15) === 15) for (let b = 255; b === 255; length += b) b = src[s++];
    let from = o - offset;
    if (from < 0) {
      // The match starts in the dictionary, and may run on into the output.
      const fromDict = Math.min(-from, length);
      dict.copy(out, o, dict.length + from, dict.length + from + fromDict);
      o += fromDict;
      length -= fromDict;
      from = 0;
    }
    for (let i = 0; i < length; i++) out[o + i] = out[from + i];
    o += length;
  }
}

function compareHybrid(a, b) {
  return a.length <= 32 && b.length <= 32 ? compareLoop(a, b) : Buffer.compare(a, b);
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc32Js(data) {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** decodeEntry with the varints read inline (no [value, offset] arrays). */
function makeDecodeInline(EntryKind) {
  return function decodeInline(buf, offset, end) {
    if (end - offset < 17) return 'entry shorter than its fixed header';
    const kind = buf[offset];
    if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) return `unknown entry kind ${kind}`;
    const version = buf.readBigUInt64BE(offset + 1);
    const expiresAtMs = buf.readUIntBE(offset + 9, 6);
    let at = offset + 15;
    let keyLen = buf[at++];
    if (keyLen >= 0x80) {
      keyLen &= 0x7f;
      let scale = 128;
      for (let i = 1; ; i++) {
        if (i >= 8 || at >= end) return 'bad key length';
        const b = buf[at++];
        keyLen += (b & 0x7f) * scale;
        if (b < 0x80) break;
        scale *= 128;
      }
    }
    const keyStart = at;
    const keyEnd = keyStart + keyLen;
    if (keyEnd > end) return 'key runs past the end';
    at = keyEnd;
    if (at >= end) return 'bad value length';
    let valueLen = buf[at++];
    if (valueLen >= 0x80) {
      valueLen &= 0x7f;
      let scale = 128;
      for (let i = 1; ; i++) {
        if (i >= 8 || at >= end) return 'bad value length';
        const b = buf[at++];
        valueLen += (b & 0x7f) * scale;
        if (b < 0x80) break;
        scale *= 128;
      }
    }
    const valueEnd = at + valueLen;
    if (valueEnd > end) return 'value runs past the end';
    const entry = {
      key: buf.subarray(keyStart, keyEnd),
      version,
      kind,
      expiresAtMs,
      value: buf.subarray(at, valueEnd),
    };
    return [entry, valueEnd];
  };
}

/** The `id` parameter of a request target, without building a URL object. */
function idManual(target) {
  const q = target.indexOf('?');
  if (q < 0) return null;
  let at = q + 1;
  while (at < target.length) {
    let end = target.indexOf('&', at);
    if (end < 0) end = target.length;
    if (
      target.charCodeAt(at) === 105 /* i */ &&
      target.charCodeAt(at + 1) === 100 /* d */ &&
      target.charCodeAt(at + 2) === 61 /* = */
    ) {
      const raw = target.slice(at + 3, end);
      return raw.includes('%') || raw.includes('+') ? decodeURIComponent(raw.replaceAll('+', ' ')) : raw;
    }
    at = end + 1;
  }
  return null;
}

export function microCases({ bytes, storage, http, promClient, nativeReader }) {
  const cases = [];

  {
    // /metrics: one latency observation per answered request (src/http/request-metrics.ts).
    const latencies = Array.from({ length: N }, (_, i) => ((i * 7919) % 5000) / 1e6);
    const own = new http.RequestMetrics();
    const registry = new promClient.Registry();
    const options = { labelNames: ['op', 'code'], registers: [registry] };
    // The same 16 bucket bounds as ringkv's (LATENCY_BOUNDS_SECONDS).
    const buckets = [
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ];
    const histogram = new promClient.Histogram({ name: 'h_seconds', help: 'h', buckets, ...options });
    const counter = new promClient.Counter({ name: 'c_total', help: 'c', ...options });
    const histogramChild = histogram.labels('get', '200');
    const counterChild = counter.labels('get', '200');
    own.observe(http.RequestOp.Get, 200, 0.001);
    histogramChild.observe(0.001);
    sameResults('observe a request', [own.count(http.RequestOp.Get, 200), 1]);
    cases.push([
      "observe a request's latency",
      {
        'RequestMetrics.observe (own histogram)': (i) =>
          own.observe(http.RequestOp.Get, 200, latencies[i & (N - 1)]),
        'prom-client Histogram child': (i) => histogramChild.observe(latencies[i & (N - 1)]),
        'prom-client Histogram + Counter children': (i) => {
          histogramChild.observe(latencies[i & (N - 1)]);
          counterChild.inc();
        },
      },
    ]);
  }

  {
    const keys = [...decimalKeys(N / 2), ...randomBuffers(N / 2, 16)];
    const left = keys.map((_, i) => keys[i]);
    const right = keys.map((_, i) => keys[(i * 31 + 7) & (N - 1)]);
    sameResults(
      'compare keys',
      [bytes.compareBytes, compareLoop, compareHybrid].map((f) =>
        left.map((a, i) => Math.sign(f(a, right[i]))),
      ),
    );
    cases.push([
      'compare 16-byte keys',
      {
        'compareBytes (Buffer.compare)': (i) => bytes.compareBytes(left[i & (N - 1)], right[i & (N - 1)]),
        'JS loop': (i) => compareLoop(left[i & (N - 1)], right[i & (N - 1)]),
        'JS loop if <= 32 bytes': (i) => compareHybrid(left[i & (N - 1)], right[i & (N - 1)]),
      },
    ]);
  }

  for (const size of [160, 4096]) {
    const inputs = randomBuffers(64, size);
    sameResults(`crc32 ${size}`, [inputs.map((b) => bytes.crc32(b)), inputs.map(crc32Js)]);
    cases.push([
      `crc32 of ${size} bytes`,
      {
        'crc32 (zlib)': (i) => bytes.crc32(inputs[i & 63]),
        'JS table': (i) => crc32Js(inputs[i & 63]),
      },
    ]);
  }

  {
    const views = randomBuffers(64, 4096);
    for (const size of [16, 128]) {
      cases.push([
        `copy a ${size}-byte view`,
        {
          copyBytes: (i) => bytes.copyBytes(views[i & 63].subarray(100, 100 + size)),
          'Buffer.from(view)': (i) => Buffer.from(views[i & 63].subarray(100, 100 + size)),
          'Buffer.copyBytesFrom': (i) => Buffer.copyBytesFrom(views[i & 63], 100, size),
        },
      ]);
    }
  }

  {
    const keys = randomBuffers(N, 16);
    const values = randomBuffers(N, 128);
    const entries = keys.map((k, i) =>
      storage.valueEntry(k, BigInt(Date.now()) * 65536n + BigInt(i), values[i]),
    );
    const size = storage.encodedEntryBytes(entries[0]);
    const out = Buffer.alloc(size * 2);
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const encodeDataView = (entry, buf, offset) => {
      buf[offset] = entry.kind;
      dv.setBigUint64(offset + 1, entry.version);
      buf.writeUIntBE(entry.expiresAtMs, offset + 9, 6);
      let at = offset + 15;
      buf[at++] = entry.key.length; // < 128 here
      at += entry.key.copy(buf, at);
      buf[at++] = (entry.value.length & 0x7f) | 0x80;
      buf[at++] = entry.value.length >>> 7;
      at += entry.value.copy(buf, at);
      return at;
    };
    const a = Buffer.alloc(size);
    const b = Buffer.alloc(size);
    storage.encodeEntry(entries[1], a, 0);
    encodeDataView(entries[1], out, 0);
    out.copy(b, 0, 0, size);
    sameResults('encode entry', [a, b]);
    cases.push([
      'encode a 16+128-byte entry',
      {
        encodeEntry: (i) => storage.encodeEntry(entries[i & (N - 1)], out, 0),
        'DataView version, inline varints': (i) => encodeDataView(entries[i & (N - 1)], out, 0),
      },
    ]);

    const encoded = entries.map((e) => {
      const buf = Buffer.alloc(size);
      storage.encodeEntry(e, buf, 0);
      return buf;
    });
    const decodeInline = makeDecodeInline(storage.EntryKind);
    sameResults('decode entry', [
      storage.decodeEntry(encoded[3], 0, size),
      decodeInline(encoded[3], 0, size),
    ]);
    cases.push([
      'decode a 16+128-byte entry',
      {
        decodeEntry: (i) => storage.decodeEntry(encoded[i & (N - 1)], 0, size),
        'inline varints': (i) => decodeInline(encoded[i & (N - 1)], 0, size),
      },
    ]);
  }

  {
    const targets = Array.from(
      { length: N },
      (_, i) => `/v0/entity?id=k${String(i * 7919).padStart(15, '0')}${i % 4 === 0 ? '&ack=2&from=3' : ''}`,
    );
    const viaUrl = (t) => new URL(t, 'http://127.0.0.1').searchParams.get('id');
    const viaParams = (t) => new URLSearchParams(t.slice(t.indexOf('?') + 1)).get('id');
    sameResults('parse id', [targets.map(viaUrl), targets.map(viaParams), targets.map(idManual)]);
    sameResults('parse encoded id', [
      ['/v0/entity?id=a%20b+c&x=1'].map(viaUrl),
      ['/v0/entity?id=a%20b+c&x=1'].map(idManual),
    ]);
    cases.push([
      'parse id from a request target',
      {
        'new URL().searchParams': (i) => viaUrl(targets[i & (N - 1)]),
        URLSearchParams: (i) => viaParams(targets[i & (N - 1)]),
        'indexOf + slice': (i) => idManual(targets[i & (N - 1)]),
      },
    ]);
  }

  {
    // A data block that misses the block cache is decompressed in the read's thread-pool task by the
    // native block reader (native/block-reader.c), or on the event loop without it
    // (src/storage/sstable/compression.ts): JSON documents as the engine bench's json workload writes.
    const nextDocument = makeDocuments(7);
    const stream = Buffer.concat(Array.from({ length: 2000 }, () => nextDocument()));
    const blocksOf = (bytes) =>
      Array.from({ length: 64 }, (_, i) => stream.subarray(i * 4 * bytes, i * 4 * bytes + bytes));
    // Like a table's: 256-byte pieces of its first blocks, 16 KiB.
    const dictionary = Buffer.concat(
      Array.from({ length: 64 }, (_, i) => stream.subarray(i * 997, i * 997 + 256)),
    );
    const blocks4k = blocksOf(4096);
    const blocks2k = blocksOf(2048);
    const packed4k = blocks4k.map((b) => lz4Compress(b, dictionary));
    const packed2k = blocks2k.map((b) => lz4Compress(b, dictionary));
    const packedPlain = blocks4k.map((b) => lz4Compress(b));
    sameResults('lz4 decode', [
      packed4k.map((c) => lz4Uncompress(c, dictionary)),
      packed4k.map((c) => lz4DecodeJs(c, Buffer.allocUnsafeSlow(4096), dictionary)),
      ...(nativeReader === undefined ? [] : [packed4k.map((c) => nativeReader.decodeLz4(c, dictionary))]),
      blocks4k,
    ]);
    cases.push([
      'decompress a data block of JSON documents (lz4)',
      {
        'lz4-napi, 4 KiB, 16 KiB dictionary': (i) => lz4Uncompress(packed4k[i & 63], dictionary),
        // The native reader's decoder called synchronously (in a read it runs in the pool instead).
        ...(nativeReader === undefined
          ? {}
          : {
              'native block reader, 4 KiB, 16 KiB dictionary': (i) =>
                nativeReader.decodeLz4(packed4k[i & 63], dictionary),
            }),
        'lz4-napi, 4 KiB, no dictionary': (i) => lz4Uncompress(packedPlain[i & 63]),
        'lz4-napi, 2 KiB, 16 KiB dictionary': (i) => lz4Uncompress(packed2k[i & 63], dictionary),
        'JS decoder, 4 KiB, 16 KiB dictionary': (i) =>
          lz4DecodeJs(packed4k[i & 63], Buffer.allocUnsafeSlow(4096), dictionary),
      },
    ]);
  }
  {
    // What a table at level 2 or deeper costs to write: each 4 KiB block compressed with the table's
    // dictionary (flush/compaction worker, src/storage/sstable/compression.ts).
    const nextDocument = makeDocuments(11);
    const stream = Buffer.concat(Array.from({ length: 2000 }, () => nextDocument()));
    const blocks = Array.from({ length: 64 }, (_, i) => stream.subarray(i * 16384, i * 16384 + 4096));
    const dictionary = Buffer.concat(
      Array.from({ length: 64 }, (_, i) => stream.subarray(i * 997, i * 997 + 256)),
    );
    cases.push([
      'compress a data block of JSON documents (lz4)',
      {
        'lz4-napi, 4 KiB, 16 KiB dictionary': (i) => lz4Compress(blocks[i & 63], dictionary),
        'lz4-napi, 4 KiB, no dictionary': (i) => lz4Compress(blocks[i & 63]),
      },
    ]);
  }
  return cases;
}
