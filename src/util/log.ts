/**
 * The node's log: one JSON object per line on stderr (pino), each with
 * `time` (ISO 8601), `level`, `node` (the node's URL), `event` (a dotted
 * name an operator can filter on: `node.ready`, `peer.down`, ...) and `msg`
 * (one human sentence), plus the event's own fields. `--log-format pretty`
 * (the default when stderr is a terminal) prints the same records as
 * aligned text instead, the node's host and port on each line.
 *
 *   const log = createLog({ node: url, level: 'info', format: 'json' });
 *   log.info('peer.down', `Peer ${peer} is down`, { peer, cause });
 *
 * Modules below the node take a Log; code that still speaks in plain lines
 * gets one through lineLog(). Writes are synchronous: a line logged just
 * before process.exit() is not lost, and logging is rare enough (changes,
 * not requests) that it costs nothing measurable.
 */
import { pino } from 'pino';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Log {
  debug(event: string, msg: string, fields?: LogFields): void;
  info(event: string, msg: string, fields?: LogFields): void;
  warn(event: string, msg: string, fields?: LogFields): void;
  error(event: string, msg: string, fields?: LogFields): void;
  /** Whether records of `level` are written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
}

/** Where lines go: stderr by default; tests pass their own. */
export interface LogSink {
  write(line: string): void;
}

export interface LogOptions {
  /** The node's URL, on every record. */
  readonly node: string;
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  readonly sink?: LogSink;
}

export function createLog(options: LogOptions): Log {
  const format = options.format ?? 'json';
  const sink = options.sink ?? stderrSink();
  const destination: LogSink = format === 'pretty' ? prettySink(sink) : sink;
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { node: options.node },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'msg',
    },
    destination,
  );
  const at =
    (level: LogLevel) =>
    (event: string, msg: string, fields?: LogFields): void => {
      logger[level]({ event, ...fields }, msg);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    enabled: (level) => logger.isLevelEnabled(level),
  };
}

/** A Log that writes nothing (tests, tools). */
export const silentLog: Log = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  enabled: () => false,
};

/**
 * A line function for code that logs plain sentences: each line becomes an
 * `event` record, at warn level when it starts with "warning:".
 */
export function lineLog(log: Log, event: string): (line: string) => void {
  return (line) => {
    if (/^warning: /i.test(line)) log.warn(event, line.slice('warning: '.length));
    else log.info(event, line);
  };
}

/** The default format: pretty when stderr is a terminal (a person reads it), JSON otherwise. */
export function defaultLogFormat(): LogFormat {
  return process.stderr.isTTY ? 'pretty' : 'json';
}

function stderrSink(): LogSink {
  return { write: (line) => process.stderr.write(line) };
}

const PRETTY_SKIP = new Set(['time', 'level', 'node', 'event', 'msg']);

/** Reformats each JSON record as `HH:MM:SS.mmm LEVEL host:port event  msg key=value ...`. */
function prettySink(sink: LogSink): LogSink {
  return {
    write(line) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        sink.write(line);
        return;
      }
      const time = typeof record.time === 'string' ? record.time.slice(11, 23) : '';
      const level = String(record.level ?? '')
        .toUpperCase()
        .padEnd(5);
      // The node on every line: `ringkv cluster` interleaves several nodes' lines on one terminal.
      const node = typeof record.node === 'string' ? record.node.replace(/^https?:\/\//, '') : '';
      const extra = Object.entries(record)
        .filter(([key]) => !PRETTY_SKIP.has(key))
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
        .join(' ');
      sink.write(
        `${time} ${level} ${node} ${String(record.event ?? '').padEnd(18)} ${record.msg ?? ''}${extra ? `  ${extra}` : ''}\n`,
      );
    },
  };
}
