/**
 * The ceiling cluster: the messages of a ringkv cluster request and nothing
 * else, to show what latency spread the machine alone gives a request that
 * wakes several processes. N processes, each a node:http server over a Map
 * (as ceiling-server.mjs) linked to every other by one TCP connection
 * carrying length-prefixed frames. No storage engine, no versions.
 *
 * With `--log-dir DIR`, each copy of a write is also made durable as
 * ringkv's is with --sync on (its default), and nothing more: node I appends
 * it to DIR/node-I.log, a file filled with zeros beforehand and opened with
 * O_DSYNC, one write() in flight and the appends of the meantime batched
 * into the next (group commit), and a copy counts only once written. That is
 * the least a durable replicated write costs this machine: its disk's
 * latencies, shared by the nodes' processes, on top of the messages'.
 *
 * A request with `ack=A&from=F` (ringkv's defaults: F the number of nodes, A
 * a majority of F; 400 for values ringkv refuses) does what ringkv's does
 * on the wire when nothing batches:
 *   PUT     stores the body, sends it to the next F-1 nodes, answers 201 once
 *           A copies are made (the coordinator's among them);
 *   GET     reads its own copy and asks the next A-1 nodes for theirs,
 *           answers once all A have answered (200 with its own copy, or 404);
 *   DELETE  as PUT (the replicas delete), answering 202.
 *
 *   node ceiling-cluster.mjs --http P0,P1,P2 --peer Q0,Q1,Q2 [--log-dir DIR [--log-bytes B]]
 *
 * starts one process per node and stops them on SIGTERM (`--index I` runs
 * node I itself); if one of them fails, it stops the others and exits 1.
 * GET /v0/status answers 200 once the node's links are up.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WRITE = 1;
const WRITE_ACK = 2;
const READ = 3;
const READ_ANSWER = 4;
const DELETE = 5;
const HEADER_BYTES = 9; // u32 length of what follows, u8 type, u32 request id
/** Zeros written ahead of a log's records (ringkv's prefill is a memtable's worth, 4 MiB and up); the log wraps at its end. */
const LOG_PREFILL_BYTES_DEFAULT = 64 << 20;

function flag(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function ports(name) {
  const list = (flag(name) ?? '').split(',').map(Number);
  if (list.length === 0 || !list.every((p) => Number.isInteger(p) && p > 0)) {
    process.stderr.write('usage: node ceiling-cluster.mjs --http P0,P1,.. --peer Q0,Q1,.. [--index I]\n');
    process.exit(2);
  }
  return list;
}

const httpPorts = ports('--http');
const peerPorts = ports('--peer');
if (httpPorts.length !== peerPorts.length) {
  process.stderr.write('--http and --peer need one port per node each\n');
  process.exit(2);
}

/** Starts one child per node; SIGTERM stops them all, and the parent exits once they have. */
function runParent() {
  const script = fileURLToPath(import.meta.url);
  const children = httpPorts.map((_, i) =>
    spawn(process.execPath, [script, ...process.argv.slice(2), '--index', String(i)], { stdio: 'inherit' }),
  );
  let left = children.length;
  let stopping = false;
  let failed = false;
  const stop = () => {
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  for (const [i, child] of children.entries()) {
    child.on('exit', (code, signal) => {
      // Once stopping, however a node ends is the stop's doing.
      if (!stopping) {
        process.stderr.write(`ceiling-cluster: node ${i} exited (${signal ?? `code ${code}`})\n`);
        failed = true;
        stop();
      }
      if (--left === 0) process.exit(failed ? 1 : 0);
    });
  }
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function frame(type, id, payload) {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(5 + payload.length, 0);
  out[4] = type;
  out.writeUInt32BE(id, 5);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** Calls onFrame(type, id, payload) for each whole frame that `socket` delivers. */
function readFrames(socket, onFrame) {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 4) {
      const end = at + 4 + pending.readUInt32BE(at);
      if (pending.length < end) break;
      onFrame(pending[at + 4], pending.readUInt32BE(at + 5), pending.subarray(at + HEADER_BYTES, end));
      at = end;
    }
    pending = pending.subarray(at);
  });
}

/**
 * An append-only log with group commit, as ringkv's WAL with sync on: the
 * file is zero-filled and synced first (overwriting allocated blocks changes
 * no file system metadata, so each write syncs only its own pages), then
 * opened with O_DSYNC; one write() is in flight, and appends made meanwhile,
 * or in one event-loop turn, share the next.
 */
class DurableLog {
  #fd;
  #size;
  #offset = 0;
  #queue = [];
  #callbacks = [];
  #busy = false;

  constructor(file, size) {
    this.#size = size;
    const zeros = Buffer.alloc(Math.min(size, 1 << 20));
    const fd = fs.openSync(file, 'w');
    for (let at = 0; at < size; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    this.#fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_DSYNC);
  }

  /** Calls `done` once `record` is durable. */
  append(record, done) {
    this.#queue.push(record);
    this.#callbacks.push(done);
    if (this.#busy) return;
    this.#busy = true;
    setImmediate(() => this.#writeNext());
  }

  #writeNext() {
    if (this.#queue.length === 0) {
      this.#busy = false;
      return;
    }
    const data = this.#queue.length === 1 ? this.#queue[0] : Buffer.concat(this.#queue);
    const callbacks = this.#callbacks;
    this.#queue = [];
    this.#callbacks = [];
    // Never read back: at the end of the zeros it starts over, so that every write overwrites.
    if (this.#offset + data.length > this.#size) this.#offset = 0;
    fs.write(this.#fd, data, 0, data.length, this.#offset, (err, written) => {
      if (err) fail(`log write: ${err.message}`);
      if (written !== data.length) fail(`log write: ${written} of ${data.length} bytes`);
      this.#offset += written;
      for (const done of callbacks) done();
      this.#writeNext();
    });
  }
}

function fail(message) {
  process.stderr.write(`ceiling-cluster: ${message}\n`);
  process.exit(1);
}

function runNode(index) {
  const n = httpPorts.length;
  const store = new Map();
  const logDir = flag('--log-dir');
  const logBytes = Number(flag('--log-bytes') ?? LOG_PREFILL_BYTES_DEFAULT);
  if (!Number.isInteger(logBytes) || logBytes < 1 << 16)
    fail(`--log-bytes: expected at least 65536, got ${logBytes}`);
  const log =
    logDir === undefined ? undefined : new DurableLog(path.join(logDir, `node-${index}.log`), logBytes);
  /** Makes this node's copy of a write (payload: the key's length, the key, the value) durable, then calls `done`. */
  const persist = (payload, done) => (log === undefined ? done() : log.append(payload, done));
  /** Links to the other nodes, by node index; requests waiting for their answers, by id. */
  const links = new Array(n);
  const waiting = new Map();
  let nextId = 1;

  // Served side: frames from the other nodes (a socket reset at shutdown is no failure).
  const peerServer = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    readFrames(socket, (type, id, payload) => {
      if (type === WRITE || type === DELETE) {
        const keyBytes = payload.readUInt16BE(0);
        const key = payload.toString('latin1', 2, 2 + keyBytes);
        if (type === DELETE) store.delete(key);
        else store.set(key, Buffer.from(payload.subarray(2 + keyBytes)));
        persist(payload, () => socket.write(frame(WRITE_ACK, id, Buffer.alloc(0))));
      } else if (type === READ) {
        socket.write(frame(READ_ANSWER, id, store.get(payload.toString('latin1')) ?? Buffer.alloc(0)));
      }
    });
  });
  peerServer.on('error', (err) => fail(`peer port ${peerPorts[index]}: ${err.message}`));
  peerServer.listen(peerPorts[index], '127.0.0.1');

  /** Sends to `count` nodes after this one; `answered` runs for each answer. */
  function fanOut(count, type, payload, answered) {
    for (let k = 1; k <= count; k++) {
      const id = nextId++ >>> 0;
      waiting.set(id, answered);
      links[(index + k) % n].write(frame(type, id, payload));
    }
  }

  /** Calls `done` once `needed` of `answers` calls were made (at once when none are needed). */
  function counter(needed, done) {
    if (needed <= 0) done();
    let answers = 0;
    return () => {
      if (++answers === needed) done();
    };
  }

  function reply(res, status, body) {
    res.writeHead(status, { 'content-length': body.length });
    res.end(body);
  }

  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path === '/v0/status') {
      const up = links.filter((l) => l !== undefined).length === n - 1;
      reply(res, up ? 200 : 503, Buffer.from(JSON.stringify({ entities: store.size, up })));
      return;
    }
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const id = params.get('id');
    if (path !== '/v0/entity' || !id) {
      reply(res, 400, Buffer.from('Bad request'));
      return;
    }
    const from = Number(params.get('from') ?? n);
    const ack = Number(params.get('ack') ?? Math.floor(from / 2) + 1);
    if (!Number.isInteger(from) || !Number.isInteger(ack) || ack < 1 || ack > from || from > n) {
      reply(res, 400, Buffer.from('Bad ack or from'));
      return;
    }
    // Keys travel as latin1 bytes: the coordinator's copy is keyed alike.
    const keyBytes = Buffer.from(id, 'latin1');
    const key = keyBytes.toString('latin1');
    if (req.method === 'GET') {
      const value = store.get(key);
      const answered = counter(ack - 1, () =>
        value === undefined ? reply(res, 404, Buffer.alloc(0)) : reply(res, 200, value),
      );
      fanOut(ack - 1, READ, keyBytes, answered);
      return;
    }
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = req.method === 'DELETE' ? Buffer.alloc(0) : Buffer.concat(chunks);
      if (keyBytes.length > 0xffff) {
        reply(res, 414, Buffer.from('Key too long'));
        return;
      }
      const payload = Buffer.allocUnsafe(2 + keyBytes.length + body.length);
      payload.writeUInt16BE(keyBytes.length, 0);
      keyBytes.copy(payload, 2);
      body.copy(payload, 2 + keyBytes.length);
      if (req.method === 'DELETE') store.delete(key);
      else store.set(key, body);
      // The coordinator's copy counts once it is made, as each replica's does.
      const copied = counter(ack, () => reply(res, req.method === 'DELETE' ? 202 : 201, Buffer.alloc(0)));
      fanOut(from - 1, req.method === 'DELETE' ? DELETE : WRITE, payload, copied);
      persist(payload, copied);
    });
  });
  server.keepAliveTimeout = 60000;
  server.on('error', (err) => fail(`HTTP port ${httpPorts[index]}: ${err.message}`));
  server.listen(httpPorts[index], '127.0.0.1');

  let stopping = false;
  // Outgoing links, retried until every other node listens; one lost after that ends the node (a bench
  // measuring a cluster that lost a link would measure something else).
  function connect(j) {
    const socket = net.connect(peerPorts[j], '127.0.0.1');
    socket.setNoDelay(true);
    socket.once('connect', () => {
      links[j] = socket;
    });
    socket.on('error', () => {
      if (links[j] === undefined) setTimeout(() => connect(j), 50);
    });
    socket.on('close', () => {
      if (links[j] === socket && !stopping) fail(`the link to node ${j} closed`);
    });
    readFrames(socket, (type, id) => {
      const answered = waiting.get(id);
      if (answered === undefined) return;
      waiting.delete(id);
      if (type === WRITE_ACK || type === READ_ANSWER) answered();
    });
  }
  for (let j = 0; j < n; j++) if (j !== index) connect(j);

  const stop = () => {
    stopping = true;
    server.close();
    peerServer.close();
    for (const link of links) link?.destroy();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// Last, once every declaration above is initialised.
const indexFlag = flag('--index');
if (indexFlag === undefined) runParent();
else runNode(Number(indexFlag));
