/**
 * The ceiling: the least a node:http server can do for ringkv's entity API.
 * It holds a Map from id to a copy of the body, and nothing else: no
 * durability, no validation beyond the id. Measured the same way as ringkv,
 * it shows what Node's HTTP stack alone allows on this machine.
 *
 * It stores a COPY of each body rather than the request's own buffer: a body
 * buffer is a view into a larger socket read, so keeping it would pin that
 * memory and turn the old generation into a garbage-collection problem that
 * no real store has.
 *
 *   node ceiling-server.mjs PORT
 *
 *   PUT    /v0/entity?id=ID   201 (body stored)
 *   GET    /v0/entity?id=ID   200 body | 404
 *   DELETE /v0/entity?id=ID   202
 *   GET    /v0/status         200 {"entities": n}
 */
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node ceiling-server.mjs PORT\n');
  process.exit(2);
}

const store = new Map();

/** The decoded `id` parameter of "/v0/entity?...", or null. */
function idOf(url) {
  const q = url.indexOf('?');
  if (q < 0 || url.slice(0, q) !== '/v0/entity') return null;
  const params = new URLSearchParams(url.slice(q + 1));
  const id = params.get('id');
  return id ? id : null;
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-length': body.length });
  res.end(body);
}

const EMPTY = Buffer.alloc(0);

const server = http.createServer((req, res) => {
  const url = req.url ?? '';
  if (url === '/v0/status') {
    reply(res, 200, Buffer.from(JSON.stringify({ entities: store.size })));
    return;
  }
  const id = idOf(url);
  if (id === null) {
    reply(res, 400, Buffer.from('Bad request'));
    return;
  }
  switch (req.method) {
    case 'GET': {
      const value = store.get(id);
      if (value === undefined) reply(res, 404, EMPTY);
      else reply(res, 200, value);
      return;
    }
    case 'PUT': {
      const chunks = [];
      let length = 0;
      req.on('data', (chunk) => {
        chunks.push(chunk);
        length += chunk.length;
      });
      req.on('end', () => {
        const copy = Buffer.allocUnsafe(length);
        let at = 0;
        for (const chunk of chunks) at += chunk.copy(copy, at);
        store.set(id, copy);
        reply(res, 201, EMPTY);
      });
      return;
    }
    case 'DELETE':
      store.delete(id);
      reply(res, 202, EMPTY);
      return;
    default:
      reply(res, 405, EMPTY);
  }
});

server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ceiling server on http://127.0.0.1:${port}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// close() waits for idle keep-alive sockets; do not wait for them forever.
process.on('SIGTERM', () => setTimeout(() => process.exit(0), 2000).unref());
