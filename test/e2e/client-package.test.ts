/**
 * `import { RingkvClient } from 'ringkv'` as another project does it: a
 * consumer in a directory of its own, with ringkv in its node_modules (a
 * link to this checkout), resolved through package.json "exports". At run
 * time it gets the compiled client; under the type checker, its declarations
 * (tsconfig.client.json).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe("the package's client entry point", () => {
  let consumer: string;

  before(async () => {
    consumer = await makeTempDir('ringkv-consumer-');
    await mkdir(join(consumer, 'node_modules'));
    await symlink(ROOT, join(consumer, 'node_modules', 'ringkv'));
    await symlink(join(ROOT, 'node_modules', '@types'), join(consumer, 'node_modules', '@types'));
    await writeFile(join(consumer, 'package.json'), '{ "type": "module", "private": true }\n');
  });
  after(removeTempDirs);

  it("runs: import { RingkvClient } from 'ringkv'", async () => {
    const port = await freePort();
    await writeFile(
      join(consumer, 'use.mjs'),
      `import { RingkvClient, RingkvError, UnavailableError } from 'ringkv';
const client = new RingkvClient({ nodes: 'http://127.0.0.1:${port}' });
try {
  await client.get('k');
} catch (err) {
  console.log(err instanceof UnavailableError, err instanceof RingkvError, err.code);
}
`,
    );
    const run = spawnSync(process.execPath, ['use.mjs'], {
      cwd: consumer,
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'true true RINGKV_UNAVAILABLE\n');
  });

  it('type-checks against the declarations', async () => {
    await writeFile(
      join(consumer, 'use.ts'),
      `import { RingkvClient, type ScanEntry, TimeoutError } from 'ringkv';
const client = new RingkvClient({ nodes: ['http://127.0.0.1:1'], timeoutMs: 100, ack: 1 });
export async function use(): Promise<void> {
  const bytes: Buffer | undefined = await client.get('k', { from: 1 });
  const text: string | undefined = await client.get('k', { encoding: 'utf8' });
  await client.put('k', bytes ?? text ?? '', { ttl: 1000, signal: AbortSignal.timeout(50) });
  await client.delete('k');
  for await (const entry of client.scan('a', 'b')) {
    const first: ScanEntry<Buffer> = entry;
    console.log(first.key.length);
  }
  console.log(new TimeoutError('RINGKV_TIMEOUT', { reason: 'r' }).status);
}
// @ts-expect-error: a value is a string or bytes
await client.put('k', 42);
`,
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    // Today's resolution (package.json's exports), and the older one that reads only its top-level "types".
    for (const [module, resolution] of [
      ['nodenext', 'nodenext'],
      ['esnext', 'node'],
    ]) {
      const flags = ['--noEmit', '--strict', '--module', module!, '--moduleResolution', resolution!];
      const run = spawnSync(
        process.execPath,
        [tsc, ...flags, '--target', 'es2022', '--types', 'node', 'use.ts'],
        {
          cwd: consumer,
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      assert.equal(run.status, 0, `--moduleResolution ${resolution}: ${run.stdout}${run.stderr}`);
    }
  });
});
