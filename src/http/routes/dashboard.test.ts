/**
 * The dashboard's answers on an HttpServer of its own: the headers that keep
 * the page and its live figures from being sniffed, framed, cached or made
 * to load anything, and a member whose /v0/status is some other server's
 * JSON shown as such rather than as a member with no figures.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { freePort } from '../../../test/support/ports.js';
import type { Store } from '../../cluster/store.js';
import { RingkvError } from '../../util/errors.js';
import { HttpServer } from '../server.js';

function get(port: number, path: string): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        assert.equal(res.statusCode, 200, body);
        resolve({ headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A store whose membership is the given members, each seen up by its link. */
function storeOf(members: readonly string[]): Store {
  const refused = async (): Promise<never> => {
    throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
  };
  return {
    clusterSize: members.length,
    get: refused,
    put: refused,
    delete: refused,
    scanLocal: () => {
      throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
    },
    status: () => ({
      membership: { members: members.map((url) => ({ url, state: 'normal', share: 1 / members.length })) },
      peers: Object.fromEntries(members.map((url) => [url, 'up'])),
    }),
    close: async () => {},
  };
}

describe('dashboard answers', () => {
  const servers: { close(): unknown }[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });

  async function startNode(members: readonly string[]): Promise<number> {
    const server = new HttpServer({
      store: storeOf(members),
      nodeUrl: members[0]!,
      cluster: members,
      keyBytesMax: 64,
      valueBytesMax: 1024,
      log: () => {},
    });
    await server.listen(0, '127.0.0.1');
    servers.push({ close: () => server.close(1000) });
    return server.port();
  }

  it('serves the page with a type, nosniff and a policy that allows only its own inline code', async () => {
    const port = await startNode(['http://127.0.0.1:1']);
    const page = await get(port, '/');
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const policy = String(page.headers['content-security-policy']);
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.doesNotMatch(policy, /unsafe/);
    const view = await get(port, '/ui/cluster');
    assert.match(String(view.headers['content-type']), /^application\/json/);
    assert.equal(view.headers['cache-control'], 'no-store');
    assert.equal(view.headers['x-content-type-options'], 'nosniff');
  });

  it("shows a member whose status is another server's JSON as not a ringkv status", async () => {
    const bodies = ['{"status":"ok"}', 'null', '[1,2,3]', '{"node":42}', '{"node":"http://x","ready":true}'];
    const others: Server[] = [];
    const urls: string[] = [];
    for (const body of bodies) {
      const other = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      const port = await freePort();
      await new Promise<void>((resolve) => other.listen(port, '127.0.0.1', resolve));
      servers.push({ close: () => new Promise((resolve) => other.close(resolve)) });
      others.push(other);
      urls.push(`http://127.0.0.1:${port}`);
    }
    const port = await startNode(['http://127.0.0.1:1', ...urls]);
    const view = JSON.parse((await get(port, '/ui/cluster')).body) as {
      members: { url: string; status: unknown; statusError?: string }[];
    };
    for (const [i, url] of urls.entries()) {
      const member = view.members.find((m) => m.url === url);
      assert.ok(member !== undefined, url);
      assert.equal(member.statusError, 'the status is not a ringkv status', bodies[i]);
      assert.equal(member.status, undefined, bodies[i]);
    }
  });
});
