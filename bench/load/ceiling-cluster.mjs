/**
 * The ceiling cluster: the messages of a ringkv cluster request and nothing
 * else, to show what latency spread the machine alone gives a request that
 * wakes several processes. N processes, each a node:http server over a Map
 * (as ceiling-server.mjs) linked to every other by one TCP connection
 * carrying length-prefixed frames. No storage, no fsync, no versions.
 *
 * A request with `ack=A&from=F` (ringkv's defaults: F the number of nodes, A
 * a majority of F; 400 for values ringkv refuses) does what ringkv's does
 * on the wire when nothing batches:
 *   PUT     stores the body, sends it to the next F-1 nodes, answers 201 once
 *           A-1 of them acknowledged (the coordinator's copy is the first);
 *   GET     reads its own copy and asks the next A-1 nodes for theirs,
 *           answers once all A have answered (200 with its own copy, or 404);
 *   DELETE  as PUT (the replicas delete), answering 202.
 *
 *   node ceiling-cluster.mjs --http P0,P1,P2 --peer Q0,Q1,Q2
 *
 * starts one process per node and stops them on SIGTERM (`--index I` runs
 * node I itself); if one of them fails, it stops the others and exits 1.
 * GET /v0/status answers 200 once the node's links are up.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const WRITE = 1;
const WRITE_ACK = 2;
const READ = 3;
const READ_ANSWER = 4;
const DELETE = 5;
const HEADER_BYTES = 9; // u32 length of what follows, u8 type, u32 request id

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
const indexFlag = flag('--index');
if (indexFlag === undefined) runParent();
else runNode(Number(indexFlag));

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

function fail(message) {
  process.stderr.write(`ceiling-cluster: ${message}\n`);
  process.exit(1);
}

function runNode(index) {
  const n = httpPorts.length;
  const store = new Map();
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
        socket.write(frame(WRITE_ACK, id, Buffer.alloc(0)));
      } else if (type === READ) {
        socket.write(frame(READ_ANSWER, id, store.get(payload.toString('latin1')) ?? Buffer.alloc(0)));
      }
    });
  });
  peerServer.on('error', (err) => fail(`peer port ${peerPorts[index]}: ${err.message}`));
  peerServer.listen(peerPorts[index], '127.0.0.1');

  /** Sends to `count` nodes after this one; `done` runs once `needed` of them answered. */
  function fanOut(count, needed, type, payload, done) {
    if (needed <= 0) done();
    let answers = 0;
    for (let k = 1; k <= count; k++) {
      const id = nextId++ >>> 0;
      waiting.set(id, () => {
        if (++answers === needed) done();
      });
      links[(index + k) % n].write(frame(type, id, payload));
    }
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
      fanOut(ack - 1, ack - 1, READ, keyBytes, () =>
        value === undefined ? reply(res, 404, Buffer.alloc(0)) : reply(res, 200, value),
      );
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
      fanOut(from - 1, ack - 1, req.method === 'DELETE' ? DELETE : WRITE, payload, () =>
        reply(res, req.method === 'DELETE' ? 202 : 201, Buffer.alloc(0)),
      );
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
