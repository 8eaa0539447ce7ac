/**
 * One GET and one PUT of /v0/entity through the route (routes/entity.ts)
 * and a single node's store (LocalStore on a MemoryEngine), in process, for
 * two builds side by side: CPU time per request, interleaved rounds, median
 * and minimum. For a change on the request path, such as the consistency
 * receipts: does a request that does not ask for one cost more?
 *
 *   node bench/micro/entity-route-compare.mjs BEFORE_CHECKOUT AFTER_CHECKOUT
 *   TRACED=1 ...   also GET and PUT with trace=1 on the second build
 *
 * Each checkout must be built (npm run build). Values are 128 bytes, keys
 * cycle through 1,024. The traced runs share call sites with the untraced
 * ones, so run them apart (TRACED unset) to see the untraced path alone.
 */
import { resolve } from 'node:path';

const [beforeDir, afterDir] = process.argv.slice(2);
if (afterDir === undefined) {
  console.error('usage: node entity-route-compare.mjs BEFORE_CHECKOUT AFTER_CHECKOUT');
  process.exit(2);
}
const REQUESTS = 20_000;
const ROUNDS = 25;
const traced = process.env.TRACED === '1';

async function load(dir) {
  const root = resolve(dir, 'dist/src');
  const entity = await import(`${root}/http/routes/entity.js`);
  const { RequestCounters } = await import(`${root}/http/routes/context.js`);
  const { LocalStore } = await import(`${root}/cluster/local-store.js`);
  const { HybridClock } = await import(`${root}/cluster/clock.js`);
  const { MemoryEngine } = await import(`${root}/storage/memory-engine.js`);
  const store = new LocalStore(new MemoryEngine(), new HybridClock(), { selfUrl: 'http://127.0.0.1:8080' });
  const ctx = {
    store,
    paramLimits: { keyBytesMax: 1024, clusterSize: 1 },
    valueBytesMax: 8 << 20,
    counters: new RequestCounters(),
    nodeUrl: 'http://127.0.0.1:8080',
    cluster: ['http://127.0.0.1:8080'],
    startedAtMs: 0,
    log: () => undefined,
    leaving: false,
    closing: false,
  };
  return { entity, ctx };
}

const TARGETS = Array.from(
  { length: 1024 },
  (_, i) => `/v0/entity?id=k${String(i * 7919).padStart(15, '0')}`,
);
const VALUE = Buffer.alloc(128, 1);

/** CPU ns per request of `REQUESTS` requests, one after the other. */
async function run(build, op, suffix) {
  let answered;
  const reply = { send: () => answered() };
  const start = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) {
    const target = TARGETS[i & 1023] + suffix;
    await new Promise((done) => {
      answered = done;
      if (op === 'GET') build.entity.getEntity(build.ctx, target, reply);
      else build.entity.putValue(build.ctx, target, VALUE, reply);
    });
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / REQUESTS;
}

const builds = { before: await load(beforeDir), after: await load(afterDir) };
const results = new Map();
const add = (name, ns) => results.set(name, [...(results.get(name) ?? []), ns]);
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 === 0 ? ['before', 'after'] : ['after', 'before']) {
    add(`${name} PUT`, await run(builds[name], 'PUT', ''));
    add(`${name} GET`, await run(builds[name], 'GET', ''));
    if (traced && name === 'after') {
      add('after PUT trace=1', await run(builds.after, 'PUT', '&trace=1'));
      add('after GET trace=1', await run(builds.after, 'GET', '&trace=1'));
    }
  }
}
for (const [name, values] of results) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1];
  console.log(
    `${name.padEnd(20)} ${median.toFixed(0).padStart(6)} ns median ${sorted[0].toFixed(0).padStart(6)} ns min`,
  );
}
