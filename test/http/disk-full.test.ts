/**
 * A full disk through the HTTP API: an in-process server over a LocalStore
 * and an LsmEngine on a FaultyVfs that fails every write with ENOSPC. Writes
 * answer 507 Insufficient Storage with a one-line reason, reads of what was
 * acknowledged answer 200, and once space returns writes succeed again and
 * nothing acknowledged is lost. On both request paths (the fast path and
 * node:http).
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { describe, test } from 'node:test';
import { HybridClock } from '../../src/cluster/clock.js';
import { LocalStore } from '../../src/cluster/local-store.js';
import { HttpServer } from '../../src/http/server.js';
import { EntryKind } from '../../src/storage/entry/entry.js';
import { LsmEngine } from '../../src/storage/lsm-engine.js';
import { FaultyVfs, MemoryVfs } from '../../src/storage/vfs/index.js';
import { faultTestOptions } from '../support/lsm-options.js';

interface Answer {
  readonly status: number;
  readonly statusMessage: string;
  readonly body: string;
}

function call(agent: Agent, port: number, path: string, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode!, statusMessage: res.statusMessage!, body: text }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const value = (key: string) => `value of ${key} ${'v'.repeat(100)}`;

describe('a full disk, through HTTP', () => {
  for (const fastPath of [true, false]) {
    test(`writes answer 507 with the reason, reads 200; writes resume once space returns (fast path ${fastPath ? 'on' : 'off'})`, async () => {
      const vfs = new FaultyVfs(new MemoryVfs());
      const engine = await LsmEngine.open(faultTestOptions(vfs));
      const url = 'http://127.0.0.1:1';
      const logged: string[] = [];
      const server = new HttpServer({
        store: new LocalStore(engine, new HybridClock()),
        nodeUrl: url,
        cluster: [url],
        keyBytesMax: 64,
        valueBytesMax: 1024,
        log: (line) => logged.push(line),
        fastPath,
      });
      await server.listen(0, '127.0.0.1');
      const port = server.port();
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const acknowledged: string[] = [];
      const put = async (key: string) => {
        const answer = await call(agent, port, `/v0/entity?id=${key}`, 'PUT', value(key));
        if (answer.status === 201) acknowledged.push(key);
        return answer;
      };
      try {
        for (let i = 0; i < 40; i++) assert.equal((await put(`before-${i}`)).status, 201);

        const full = vfs.inject({ op: 'write', error: 'ENOSPC' });
        for (let i = 0; i < 20; i++) {
          const answer = await put(`during-${i}`);
          assert.equal(answer.status, 507, answer.body);
          assert.equal(answer.statusMessage, 'Insufficient Storage');
          assert.match(answer.body, /^Disk full: .*\/data\/.*ENOSPC: no space left on device/);
          assert.ok(!answer.body.includes('\n'), 'one line');
        }
        assert.ok(full.injected > 0);
        for (const key of acknowledged) {
          const answer = await call(agent, port, `/v0/entity?id=${key}`);
          assert.equal(answer.status, 200, key);
          assert.equal(answer.body, value(key));
        }
        // Refused for lack of space, not failed: nothing for the operator's log per request.
        assert.deepEqual(logged, []);

        full.remove();
        // Writes that need a new log or a flush are refused until the retries, after their backoff, succeed.
        const putOnceTaken = async (key: string) => {
          let answer = await put(key);
          for (let waitedMs = 0; answer.status === 507 && waitedMs < 5000; waitedMs += 10) {
            await new Promise((resolve) => setTimeout(resolve, 10));
            answer = await put(key);
          }
          return answer;
        };
        for (let i = 0; i < 40; i++) {
          const answer = await putOnceTaken(`after-${i}`);
          assert.equal(answer.status, 201, answer.body);
        }
        for (const key of acknowledged) {
          assert.equal((await call(agent, port, `/v0/entity?id=${key}`)).status, 200, key);
        }
        // The path under test answered them.
        assert.equal(server.counters.fastPath > 0, fastPath);
      } finally {
        agent.destroy();
        await server.close(1000);
      }

      // Every acknowledged write is in the tables and logs, and the logs that failed are gone.
      await engine.flush();
      await engine.close();
      const reopened = await LsmEngine.open(faultTestOptions(vfs));
      assert.ok(
        reopened.recovery.every((log) => log.closed),
        'every log left was closed cleanly: the failed ones went with their flushes',
      );
      for (const key of acknowledged) {
        const entry = await reopened.get(Buffer.from(key));
        assert.equal(entry?.kind, EntryKind.Value, key);
        assert.equal(entry.value.toString(), value(key));
      }
      await reopened.close();
    });
  }
});
