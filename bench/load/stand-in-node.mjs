/**
 * A stand-in for `bin/ringkv`, for checking the bench harness itself where
 * ringkv is not built or a command has not landed yet:
 *
 *   BENCH_RINGKV_BIN=load/stand-in-node.mjs node run.mjs server
 *
 * It takes the same command lines as ringkv (`serve --url U --data D
 * [--sync on|off]`, `cluster [--nodes N] [--base-port P] [--data D]`),
 * keeps entities in one in-memory Map per process (the cluster's nodes share
 * it, so a key written through one node reads through any), ignores ack/from,
 * and answers /v0/status with engine.writes and engine.walSyncs counters
 * (one "sync" per event-loop turn that had writes, when sync is on). It
 * measures nothing about ringkv: its figures are the harness's, not the store's.
 */
import fs from 'node:fs';
import http from 'node:http';

function flag(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

const [command, ...args] = process.argv.slice(2);
const store = new Map();
const engine = { writes: 0, walSyncs: 0, reads: 0 };
let sync = true;
let syncPending = false;

function noteWrite() {
  engine.writes++;
  if (sync && !syncPending) {
    syncPending = true;
    setImmediate(() => {
      syncPending = false;
      engine.walSyncs++;
    });
  }
}

function idOf(url) {
  const q = url.indexOf('?');
  if (q < 0 || url.slice(0, q) !== '/v0/entity') return null;
  return new URLSearchParams(url.slice(q + 1)).get('id') || null;
}

function handler(req, res) {
  const reply = (status, body = Buffer.alloc(0)) => {
    res.writeHead(status, { 'content-length': body.length });
    res.end(body);
  };
  const url = req.url ?? '';
  if (url === '/v0/status') return reply(200, Buffer.from(JSON.stringify({ standIn: true, engine })));
  const id = idOf(url);
  if (id === null) return reply(400, Buffer.from('Bad request'));
  if (req.method === 'GET') {
    engine.reads++;
    const v = store.get(id);
    return v === undefined ? reply(404) : reply(200, v);
  }
  if (req.method === 'DELETE') {
    store.delete(id);
    noteWrite();
    return reply(202);
  }
  if (req.method !== 'PUT') return reply(405);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    store.set(id, Buffer.concat(chunks));
    noteWrite();
    reply(201);
  });
}

function listen(port) {
  const server = http.createServer(handler);
  server.listen(port, '127.0.0.1');
  return server;
}

let servers = [];
if (command === 'serve') {
  const url = new URL(flag(args, '--url', 'http://127.0.0.1:8080'));
  sync = flag(args, '--sync', 'on') !== 'off';
  fs.mkdirSync(flag(args, '--data', './data'), { recursive: true });
  servers = [listen(Number(url.port))];
} else if (command === 'cluster') {
  const nodes = Number(flag(args, '--nodes', '3'));
  const base = Number(flag(args, '--base-port', '8080'));
  const data = flag(args, '--data', './data');
  for (let i = 0; i < nodes; i++) fs.mkdirSync(`${data}/node-${i}`, { recursive: true });
  servers = Array.from({ length: nodes }, (_, i) => listen(base + i));
  for (let i = 0; i < nodes; i++) process.stdout.write(`http://127.0.0.1:${base + i}\n`);
} else {
  process.stderr.write('usage: stand-in-node.mjs serve|cluster ...\n');
  process.exit(2);
}

const stop = () => {
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
