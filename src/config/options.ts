/**
 * Command-line flags to frozen, validated options. Everything a flag can get
 * wrong is caught here, once, with a one-line RingkvError('RINGKV_CONFIG')
 * naming the flag, so that the rest of the node trusts its options.
 *
 *   serveOptions({ url: 'http://127.0.0.1:8080', data: './data' })
 *   // -> { url: 'http://127.0.0.1:8080', host: '127.0.0.1', port: 8080, cluster: [url], ... }
 */
import { RingkvError } from '../util/errors.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../util/log.js';
import { BLOCK_COMPRESSIONS, type BlockCompression, DEFAULT_BLOCK_COMPRESSION } from './compression.js';
import { limits } from './limits.js';

const KiB = 1024;
const GiB = 1024 * 1024 * KiB;

/** Flags exactly as `ringkv serve` takes them (API.md), as parseArgs hands them over. */
export interface ServeFlags {
  readonly url?: string | undefined;
  readonly data?: string | undefined;
  readonly cluster?: string | undefined;
  readonly join?: string | undefined;
  readonly replace?: string | undefined;
  readonly sync?: string | undefined;
  readonly 'anti-entropy-interval'?: string | undefined;
  readonly 'max-key-bytes'?: string | undefined;
  readonly 'max-value-bytes'?: string | undefined;
  readonly 'memtable-bytes'?: string | undefined;
  readonly 'block-cache-bytes'?: string | undefined;
  readonly compression?: string | undefined;
  readonly 'request-timeout'?: string | undefined;
  readonly 'cluster-secret'?: string | undefined;
  readonly 'max-clock-skew'?: string | undefined;
  readonly 'log-level'?: string | undefined;
  readonly 'log-format'?: string | undefined;
  readonly 'slow-request'?: string | undefined;
}

/** The serve flags that tune a node rather than name it: `ringkv cluster` passes them to every node. */
export const NODE_TUNING_FLAG_NAMES = [
  'sync',
  'anti-entropy-interval',
  'max-key-bytes',
  'max-value-bytes',
  'memtable-bytes',
  'block-cache-bytes',
  'compression',
  'request-timeout',
  'cluster-secret',
  'max-clock-skew',
  'log-level',
  'log-format',
  'slow-request',
] as const satisfies readonly (keyof ServeFlags)[];

/** The flag names serveOptions() understands; the CLI builds its parser from them. */
export const SERVE_FLAG_NAMES = [
  'url',
  'data',
  'cluster',
  'join',
  'replace',
  ...NODE_TUNING_FLAG_NAMES,
] as const satisfies readonly (keyof ServeFlags)[];

export interface ServeOptions {
  /** This node's URL, normalized to `http://host:port`. */
  readonly url: string;
  /** Where the node listens: the URL's host and port. */
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Every node's normalized URL, this one included, in the order given. */
  readonly cluster: readonly string[];
  /** `--join`: a member of a running cluster this node joins (normalized); undefined: none. */
  readonly join: string | undefined;
  /** `--replace` (with --join): the dead member this node takes the place of. */
  readonly replace: string | undefined;
  readonly sync: boolean;
  /** 0: anti-entropy off. */
  readonly antiEntropyIntervalMs: number;
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly memtableBytesMax: number;
  readonly blockCacheBytes: number;
  /** The codec of the SSTable blocks the node writes from now on (tables written before keep theirs). */
  readonly compression: BlockCompression;
  readonly requestTimeoutMs: number;
  /** Shared secret nodes present to each other; undefined: none. */
  readonly clusterSecret: string | undefined;
  /** The largest wall-clock difference between nodes that writes are ordered under (replication/replica.ts). */
  readonly clockSkewMaxMs: number;
  readonly logLevel: LogLevel;
  /** undefined: pretty when stderr is a terminal, JSON otherwise (decided where stderr is known). */
  readonly logFormat: LogFormat | undefined;
  /** Client requests slower than this are logged (0: none). */
  readonly slowRequestMs: number;
}

export interface NodeAddress {
  readonly url: string;
  readonly host: string;
  readonly port: number;
}

export function serveOptions(flags: ServeFlags): ServeOptions {
  const self = nodeAddress(required(flags.url, 'url'), '--url');
  const dataDir = required(flags.data, 'data');
  const cluster = flags.cluster === undefined ? [self.url] : clusterUrls(flags.cluster);
  if (!cluster.includes(self.url)) {
    throw configError(`Bad --cluster: it does not list this node's --url ${self.url}`);
  }
  const join = flags.join === undefined ? undefined : nodeAddress(flags.join, '--join').url;
  const replace = flags.replace === undefined ? undefined : nodeAddress(flags.replace, '--replace').url;
  if (join !== undefined && flags.cluster !== undefined) {
    throw configError(
      'Bad --join: give --cluster to start a new cluster, or --join to join a running one, not both',
    );
  }
  if (join === self.url) throw configError(`Bad --join: ${join} is this node; name a member of the cluster`);
  if (replace !== undefined && join === undefined)
    throw configError('Bad --replace: it needs --join ANY_MEMBER');
  if (replace === self.url) throw configError(`Bad --replace: ${replace} is this node; name the dead member`);
  if (replace !== undefined && replace === join) {
    throw configError(
      `Bad --replace: ${replace} is also --join; join through a live member to replace a dead one`,
    );
  }
  const valueBytesMax = integer(flags['max-value-bytes'], 'max-value-bytes', {
    fallback: limits.valueBytesMax,
    min: 1,
    max: limits.valueBytesHardMax,
  });
  // In a cluster every value crosses to its replicas in one internode frame (and so do repairs and
  // hints): a larger one would be stored here and nowhere else, for good.
  const clusterValueBytesMax = limits.internodeFrameBytesMax - limits.keyBytesHardMax - 64;
  if ((cluster.length > 1 || join !== undefined) && valueBytesMax > clusterValueBytesMax) {
    throw configError(
      `Bad --max-value-bytes: at most ${clusterValueBytesMax} in a cluster (a value crosses to its replicas in one internode frame)`,
    );
  }
  return Object.freeze({
    url: self.url,
    host: self.host,
    port: self.port,
    dataDir,
    cluster: Object.freeze(cluster),
    join,
    replace,
    sync: onOff(flags.sync, 'sync', true),
    antiEntropyIntervalMs: integer(flags['anti-entropy-interval'], 'anti-entropy-interval', {
      fallback: limits.antiEntropyIntervalMs,
      min: 0,
      max: 2 ** 31 - 1, // setTimeout's largest delay
    }),
    keyBytesMax: integer(flags['max-key-bytes'], 'max-key-bytes', {
      fallback: limits.keyBytesMax,
      min: 1,
      // The anti-entropy index stores each key after its 4-byte hash.
      max: limits.keyBytesHardMax - 4,
    }),
    valueBytesMax,
    memtableBytesMax: integer(flags['memtable-bytes'], 'memtable-bytes', {
      fallback: limits.memtableBytesMax,
      min: 4 * KiB,
      max: GiB,
    }),
    blockCacheBytes: integer(flags['block-cache-bytes'], 'block-cache-bytes', {
      fallback: limits.blockCacheBytes,
      min: 0,
      max: 64 * GiB,
    }),
    compression: oneOf(flags.compression, 'compression', BLOCK_COMPRESSIONS) ?? DEFAULT_BLOCK_COMPRESSION,
    requestTimeoutMs: integer(flags['request-timeout'], 'request-timeout', {
      fallback: limits.requestTimeoutMs,
      min: 1,
      max: 10 * 60 * 1000,
    }),
    clusterSecret: secret(flags['cluster-secret']),
    clockSkewMaxMs: clockSkewMaxMs(flags['max-clock-skew']),
    logLevel: oneOf(flags['log-level'], 'log-level', LOG_LEVELS) ?? 'info',
    logFormat: oneOf(flags['log-format'], 'log-format', LOG_FORMATS),
    slowRequestMs: integer(flags['slow-request'], 'slow-request', {
      fallback: limits.slowRequestMs,
      min: 0,
      max: 10 * 60 * 1000,
    }),
  });
}

/**
 * The switches a node reads from its environment (benchmarks, tests), with
 * the values each takes; unset or empty is the default. The modules that use
 * them read them where they are needed; this list only refuses a value none
 * of them knows, which they would each take for the default without a word.
 */
const ENV_SWITCHES: Readonly<Record<string, readonly string[]>> = {
  RINGKV_HTTP_FAST_PATH: ['on', 'off'],
  RINGKV_INTERNODE: ['binary', 'http'],
  RINGKV_NATIVE: ['on', 'off'],
  RINGKV_INVARIANTS: ['0', '1'],
};

/**
 * The environment knobs of a node, each checked as a flag is (a bad one:
 * RINGKV_CONFIG): the numeric ones, returned, and the switches, only checked.
 */
export function nodeEnvSettings(env: NodeJS.ProcessEnv = process.env): {
  readonly clockOffsetMs: number;
  readonly hintHandoffIntervalMs: number;
  readonly streamBytesPerSecond: number;
} {
  for (const [name, values] of Object.entries(ENV_SWITCHES)) {
    const text = env[name];
    if (text === undefined || text === '' || values.includes(text)) continue;
    throw configError(`Bad ${name}: expected ${values.join(' or ')}, got ${JSON.stringify(text)}`);
  }
  return {
    clockOffsetMs: clockOffsetFromEnv(env),
    hintHandoffIntervalMs: hintHandoffIntervalFromEnv(env),
    streamBytesPerSecond: streamBytesPerSecondFromEnv(env),
  };
}

/**
 * RINGKV_CLOCK_OFFSET_MS: milliseconds added to the node's wall clock, to
 * fake clock skew between nodes in tests and diagnostics (never in
 * production). Unset or empty: 0. Whole numbers, negative ones too, within
 * ±1 hour.
 */
export function clockOffsetFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.RINGKV_CLOCK_OFFSET_MS;
  if (text === undefined || text === '') return 0;
  if (!/^-?(0|[1-9][0-9]{0,6})$/.test(text) || Math.abs(Number(text)) > 3_600_000) {
    throw configError(
      `Bad RINGKV_CLOCK_OFFSET_MS: expected whole milliseconds within ±3600000, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/**
 * RINGKV_HINT_HANDOFF_INTERVAL_MS: how often the node looks for hints to hand
 * to peers that are back (tests and diagnostics only: a test that checks the
 * shutdown drain sets it high, so that only the drain can deliver). Unset or
 * empty: limits.hintHandoffIntervalMs. Whole milliseconds, 1 ms to 1 hour.
 */
export function hintHandoffIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.RINGKV_HINT_HANDOFF_INTERVAL_MS;
  if (text === undefined || text === '') return limits.hintHandoffIntervalMs;
  if (!/^[1-9][0-9]{0,6}$/.test(text) || Number(text) > 3_600_000) {
    throw configError(
      `Bad RINGKV_HINT_HANDOFF_INTERVAL_MS: expected whole milliseconds in 1..3600000, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/**
 * RINGKV_STREAM_BYTES_PER_SEC: the bytes per second a node takes from its
 * sources when it streams its new ranges in a move (flow control; tests set
 * it low to stop a move halfway). Unset or empty: limits.streamBytesPerSecondMax.
 */
export function streamBytesPerSecondFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.RINGKV_STREAM_BYTES_PER_SEC;
  if (text === undefined || text === '') return limits.streamBytesPerSecondMax;
  if (!/^[1-9][0-9]{0,11}$/.test(text)) {
    throw configError(
      `Bad RINGKV_STREAM_BYTES_PER_SEC: expected a positive whole number, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/**
 * Parses a node URL: http only, a host, an optional port (80 when left out),
 * nothing after the authority. Normalized so that one node has one spelling
 * (`http://127.0.0.1:8080`) and the --cluster list can be compared with --url.
 */
export function nodeAddress(text: string, flag: string): NodeAddress {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw configError(`Bad ${flag}: ${JSON.stringify(text)} is not a URL`);
  }
  if (parsed.protocol !== 'http:') throw configError(`Bad ${flag}: ${text} is not an http:// URL`);
  if (parsed.username !== '' || parsed.password !== '') {
    throw configError(`Bad ${flag}: ${text} must not carry credentials`);
  }
  if ((parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '' || parsed.hash !== '') {
    throw configError(`Bad ${flag}: ${text} must have no path, query or fragment`);
  }
  const port = parsed.port === '' ? 80 : Number(parsed.port);
  if (port === 0) throw configError(`Bad ${flag}: ${text} needs a port other than 0`);
  // URL keeps IPv6 hosts bracketed; listen() wants them bare.
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { url: `http://${parsed.hostname}:${port}`, host, port };
}

function clusterUrls(text: string): string[] {
  const urls: string[] = [];
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') throw configError('Bad --cluster: empty entry in the list');
    const { url } = nodeAddress(item, '--cluster');
    if (urls.includes(url)) throw configError(`Bad --cluster: ${url} is listed twice`);
    urls.push(url);
  }
  return urls;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw configError(`Missing --${flag}`);
  return value;
}

function onOff(value: string | undefined, flag: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw configError(`Bad --${flag}: expected on or off, got ${JSON.stringify(value)}`);
}

function oneOf<T extends string>(
  value: string | undefined,
  flag: string,
  choices: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw configError(`Bad --${flag}: expected ${choices.join(', ')}, got ${JSON.stringify(value)}`);
}

interface IntegerRule {
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
}

/** --max-clock-skew MS, for serve and for restore: limits.clockSkewMaxMs when absent. */
export function clockSkewMaxMs(value: string | undefined): number {
  return integer(value, 'max-clock-skew', {
    fallback: limits.clockSkewMaxMs,
    min: 0,
    max: 60_000, // the clock follows versions up to twice this ahead of its wall clock (clock.ts)
  });
}

function integer(value: string | undefined, flag: string, rule: IntegerRule): number {
  if (value === undefined) return rule.fallback;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value)) {
    throw configError(`Bad --${flag}: expected a whole number, got ${JSON.stringify(value)}`);
  }
  const n = Number(value);
  if (n < rule.min || n > rule.max) {
    throw configError(`Bad --${flag}: ${n} is outside ${rule.min}..${rule.max}`);
  }
  return n;
}

function secret(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === '') throw configError('Bad --cluster-secret: empty');
  return value;
}

function configError(message: string): RingkvError {
  return new RingkvError('RINGKV_CONFIG', message);
}
