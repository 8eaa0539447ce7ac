/**
 * What main.ts dispatches to: one Command per `ringkv <name>`, loaded only
 * when it runs (so that `ringkv get` never loads the server), and the exit
 * codes of the commands that talk to a node.
 */
export interface Command {
  /** The full help text: `ringkv help NAME`, `ringkv NAME --help`. */
  readonly usage: string;
  /**
   * Runs the command. One that finishes sets process.exitCode (its output is
   * flushed before the exit); one that serves runs until a signal. A thrown
   * RingkvError('RINGKV_CONFIG') is bad usage: one line on stderr, exit 2.
   */
  run(args: readonly string[]): Promise<void>;
}

/** Exit codes of the client commands (get, put, delete, scan, status, ring). */
export const EXIT = {
  ok: 0,
  /** get: the key has no value. */
  notFound: 1,
  /** Bad flags or arguments, or a request the node refused as bad (400, 413, 414). */
  usage: 2,
  /** No node answered: refused connections, 503, 504, or the timeout. */
  unavailable: 3,
  /** Anything else: a 500, an answer that cannot be read. */
  failed: 4,
} as const;
