/**
 * --cluster URLs that name one node under two spellings. nodeAddress()
 * normalizes what a URL parser can (case, a trailing slash, `127.1`), not
 * names: `http://localhost:8080` and `http://127.0.0.1:8080` reach the same
 * listener, so the node would count itself as its own peer and wait on
 * itself for replicas it never sends (default writes answer 504). Checked
 * at start by `ringkv serve` and `ringkv cluster`, before anything is
 * written: a usage error, exit 2. `serve` checks --join and --replace so
 * too against its own --url (and --replace against --join).
 *
 * Two URLs are one node when their ports are equal and their addresses
 * meet: a host name stands for every address node:dns lookup() gives it
 * (a client may connect to any of them), an IP literal for itself. The
 * forms of one address are made one: an IPv4-mapped IPv6 address is its
 * IPv4 address, and the unspecified addresses (0.0.0.0, ::) are loopback,
 * where a connection to them goes. Distinct loopback addresses (127.0.0.2,
 * ::1 beside 127.0.0.1) stay distinct: a listener on one does not get the
 * other's connections.
 *
 * A name that does not resolve within limits.clusterLookupTimeoutMs (or at
 * all) is compared by its spelling alone, as before: a peer's name may not
 * be in DNS yet when the first node starts (containers, a service that
 * registers on start), and refusing would make start order matter. What
 * this misses is only what went unchecked before.
 *
 *   await checkDistinctEndpoints(['http://127.0.0.1:8080', 'http://localhost:8080']);
 *   // throws RINGKV_CONFIG: Bad --cluster: http://127.0.0.1:8080 and http://localhost:8080 are the same node (...)
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { RingkvError } from '../util/errors.js';
import { limits } from './limits.js';

/** Every address of a host name; rejects when it does not resolve. */
export type AddressLookup = (host: string) => Promise<readonly string[]>;

export interface EndpointCheckOptions {
  /** Default: node:dns lookup() of every address (getaddrinfo: /etc/hosts, then DNS). */
  readonly lookup?: AddressLookup;
  /** Default: limits.clusterLookupTimeoutMs. */
  readonly timeoutMs?: number;
  /** The flag the refusal names (default --cluster): --join, --replace against this node's --url. */
  readonly flag?: string;
}

/**
 * Refuses `urls` (normalized by nodeAddress(), each spelled once) when two
 * of them reach one endpoint, naming both spellings.
 */
export async function checkDistinctEndpoints(
  urls: readonly string[],
  options: EndpointCheckOptions = {},
): Promise<void> {
  if (urls.length < 2) return;
  const resolve = options.lookup ?? lookupAll;
  const timeoutMs = options.timeoutMs ?? limits.clusterLookupTimeoutMs;
  const endpoints = urls.map((url) => {
    const parsed = new URL(url);
    const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
    return { url, host, port: parsed.port === '' ? 80 : Number(parsed.port) };
  });
  const names = [...new Set(endpoints.map((e) => e.host).filter((host) => isIP(host) === 0))];
  const resolved = new Map(
    await Promise.all(
      names.map(async (name) => [name, await within(name, resolve(name), timeoutMs)] as const),
    ),
  );
  const seen = new Map<string, string>();
  for (const { url, host, port } of endpoints) {
    // An IP literal is its own address; a name that did not resolve stands for itself (within()).
    for (const address of new Set((resolved.get(host) ?? [host]).map(canonicalAddress))) {
      const endpoint = `${address} port ${port}`;
      const other = seen.get(endpoint);
      if (other !== undefined && other !== url) {
        throw new RingkvError(
          'RINGKV_CONFIG',
          `Bad ${options.flag ?? '--cluster'}: ${other} and ${url} are the same node (both reach ${endpoint})`,
        );
      }
      seen.set(endpoint, url);
    }
  }
}

/** One spelling per address: lower case, IPv4-mapped IPv6 as IPv4, the unspecified addresses as loopback. */
export function canonicalAddress(address: string): string {
  const text = address.toLowerCase();
  if (text === '0.0.0.0') return '127.0.0.1';
  if (text === '::') return '::1';
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) return canonicalAddress(dotted[1]!);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (hex !== null) {
    const high = Number.parseInt(hex[1]!, 16);
    const low = Number.parseInt(hex[2]!, 16);
    return canonicalAddress(`${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`);
  }
  return text;
}

async function lookupAll(host: string): Promise<readonly string[]> {
  return (await lookup(host, { all: true })).map((entry) => entry.address);
}

/** The name's addresses, or the name itself when it fails or takes longer than `ms` (the lookup is left to finish). */
async function within(
  name: string,
  addresses: Promise<readonly string[]>,
  ms: number,
): Promise<readonly string[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<readonly string[]>((resolve) => {
    timer = setTimeout(() => resolve([name]), ms);
  });
  try {
    const found = await Promise.race([addresses.catch(() => []), late]);
    return found.length > 0 ? found : [name];
  } finally {
    clearTimeout(timer);
  }
}
