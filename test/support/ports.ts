/** Free TCP ports on 127.0.0.1 for test nodes. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

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
    if (free) return ports;
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
