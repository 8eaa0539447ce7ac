/** Free TCP ports on 127.0.0.1 for test nodes. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Ports below the ephemeral range, where no outgoing connection takes its local port (Linux's range, read once). */
const LISTEN_RANGE = listenRange();

function listenRange(): { low: number; high: number } | undefined {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return low !== undefined && low > 12_000 ? { low: 10_000, high: low - 1 } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A port nothing listens on right now. Picked at random below the ephemeral
 * range where there is room: a port bound with port 0 and released could be
 * taken as the local port of any outgoing connection (a test's load, a
 * node's links) before the node listens on it. Elsewhere, bound with port 0
 * and released. Another test process could still take the port first; at
 * random among thousands, that is rare enough for tests.
 */
export async function freePort(): Promise<number> {
  return (await freeConsecutivePorts(1))[0]!;
}

/** `count` consecutive ports nothing listens on right now, below the ephemeral range where there is room (freePort()). */
export async function freeConsecutivePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base =
      LISTEN_RANGE === undefined
        ? await ephemeralPort()
        : LISTEN_RANGE.low + Math.floor(Math.random() * (LISTEN_RANGE.high - LISTEN_RANGE.low + 2 - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.at(-1)! > 65_535) continue;
    let free = true;
    for (const port of ports) free = free && (await portIsFree(port));
    // Free now, but another test file running beside this one (or this one, asking again before
    // its nodes listen) may have been handed it a moment ago: taken only once it is reserved.
    if (free && ports.every(reserve)) return ports;
  }
  throw new Error(`No ${count} consecutive free ports found`);
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count && attempt < count * 10; attempt++) ports.add(await freePort());
  if (ports.size < count) throw new Error(`Could not find ${count} free ports`);
  return [...ports];
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1' }, () => server.close(() => resolve(true)));
  });
}

/** Where test processes reserve the ports they hand out: one file per port, holding its pid. */
const RESERVATIONS = join(tmpdir(), 'ringkv-test-ports');
/** This process's reservations, given back as it exits. */
const reserved: string[] = [];
process.once('exit', () => {
  for (const path of reserved) rmSync(path, { force: true });
});

/**
 * Reserves `port` for this process for its life, unless another live test
 * process (or this one) has: a file created exclusively, so that two test
 * files running at once never start nodes on one port. A reservation whose
 * process is gone is taken over.
 */
function reserve(port: number): boolean {
  const path = join(RESERVATIONS, String(port));
  for (let tries = 0; tries < 2; tries++) {
    try {
      mkdirSync(RESERVATIONS, { recursive: true });
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      reserved.push(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true; // cannot reserve: go on as before
      const text = readFileSync(path, 'utf8').trim();
      const owner = Number(text);
      // Empty: its owner is writing its pid right now.
      if (text === '' || owner === process.pid || isAlive(owner)) return false;
      rmSync(path, { force: true });
    }
  }
  return false;
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
