// The size of libuv's thread pool for a ringkv process. Node reads
// UV_THREADPOOL_SIZE once, when the pool starts, and the ES module loader
// starts it before any of ringkv's modules run: so bin/ringkv (CommonJS, see
// bin/package.json) sets it first thing, and whatever starts a node without
// bin/ringkv (`ringkv cluster`'s children inherit it; the tests and benches)
// passes it in the child's environment.
//
// Node's default is 4 threads. On a machine with fewer cores, threads that
// outnumber them preempt the event loop: on 2 cores, uncached lz4 reads
// (read and decompressed in the pool, src/storage/sstable/native-reader.ts)
// made twice the context switches with 4 threads as with 2, and in the
// engine bench ran at 73-115% of uncompressed reads' rate with 4 threads
// against 99-147% with 2 (docs/performance.md, Block compression). So: as
// many threads as cores, from 2 to Node's 4.
// A UV_THREADPOOL_SIZE set by the user wins.
'use strict';
const { availableParallelism } = require('node:os');

/** Threads for this machine: its cores, at least 2 (a WAL sync beside a read), at most Node's default 4. */
function threadPoolSize(cores = availableParallelism()) {
  return Math.max(2, Math.min(4, cores));
}

/** `env` with UV_THREADPOOL_SIZE set to threadPoolSize() unless it is set already. */
function withThreadPoolSize(env) {
  return env.UV_THREADPOOL_SIZE ? env : { ...env, UV_THREADPOOL_SIZE: String(threadPoolSize()) };
}

module.exports = { threadPoolSize, withThreadPoolSize };
