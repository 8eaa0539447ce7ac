import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLog, lineLog } from './log.js';

function captured(options: { level?: 'debug' | 'info' | 'warn' | 'error'; format?: 'json' | 'pretty' } = {}) {
  const lines: string[] = [];
  const log = createLog({
    node: 'http://127.0.0.1:8080',
    ...options,
    sink: { write: (line) => lines.push(line) },
  });
  return { log, lines };
}

test('a record is one JSON line with time, level, node, event, msg and its fields', () => {
  const { log, lines } = captured();
  log.info('peer.down', 'Peer http://127.0.0.1:8081 is down', { peer: 'http://127.0.0.1:8081', attempts: 2 });
  assert.equal(lines.length, 1);
  assert.ok(lines[0]!.endsWith('\n'));
  assert.equal(lines[0]!.trim().split('\n').length, 1);
  const record = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(record.level, 'info');
  assert.equal(record.node, 'http://127.0.0.1:8080');
  assert.equal(record.event, 'peer.down');
  assert.equal(record.msg, 'Peer http://127.0.0.1:8081 is down');
  assert.equal(record.peer, 'http://127.0.0.1:8081');
  assert.equal(record.attempts, 2);
  assert.match(String(record.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('records below the level are dropped', () => {
  const { log, lines } = captured({ level: 'warn' });
  log.debug('a', 'debug');
  log.info('b', 'info');
  log.warn('c', 'warn');
  log.error('d', 'error');
  assert.deepEqual(
    lines.map((line) => (JSON.parse(line) as { level: string }).level),
    ['warn', 'error'],
  );
  assert.equal(log.enabled('info'), false);
  assert.equal(log.enabled('error'), true);
});

test('pretty prints time, level, node, event, message and fields on one line', () => {
  const { log, lines } = captured({ format: 'pretty' });
  log.warn('hints.dropped', 'Dropped 3 hints', { peer: 'http://b:1', count: 3 });
  assert.equal(lines.length, 1);
  // The node's host and port: `ringkv cluster` puts several nodes' lines on one terminal.
  assert.match(
    lines[0]!,
    /^\d\d:\d\d:\d\d\.\d{3} WARN {2}127\.0\.0\.1:8080 hints\.dropped\s+Dropped 3 hints {2}peer=http:\/\/b:1 count=3\n$/,
  );
});

test('lineLog turns plain lines into records, warnings at warn level', () => {
  const { log, lines } = captured();
  const line = lineLog(log, 'engine');
  line('Flushed 1,024 entries');
  line('warning: no --cluster-secret');
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    records.map((r) => [r.level, r.event, r.msg]),
    [
      ['info', 'engine', 'Flushed 1,024 entries'],
      ['warn', 'engine', 'no --cluster-secret'],
    ],
  );
});
