/**
 * The `ringkv` command: dispatches to a subcommand. Any error that reaches
 * here is reported as one line on stderr with a non-zero exit (2 for bad
 * usage, 1 otherwise), never as a stack trace.
 *
 * Each command lives in its own module, loaded when it runs: `ringkv get`
 * loads the client, never the server. A new command is one line of COMMANDS.
 */
import { errorMessage, isRingkvError } from '../util/errors.js';
import type { Command } from './command.js';
import { complain } from './terminal-safe.js';

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  serve: {
    summary: 'run one node',
    load: async () => {
      const { SERVE_USAGE, serveCommand } = await import('./serve.js');
      return { usage: SERVE_USAGE, run: serveCommand };
    },
  },
  cluster: {
    summary: 'run N local nodes as one cluster',
    load: async () => {
      const { CLUSTER_USAGE, clusterCommand } = await import('./cluster.js');
      return { usage: CLUSTER_USAGE, run: clusterCommand };
    },
  },
  get: { summary: "print a key's value", load: async () => (await import('./data-commands.js')).get },
  put: {
    summary: 'store a value (from an argument, a file or stdin)',
    load: async () => (await import('./data-commands.js')).put,
  },
  delete: { summary: 'delete a key', load: async () => (await import('./data-commands.js')).del },
  scan: {
    summary: 'print the entries of a key range',
    load: async () => (await import('./data-commands.js')).scan,
  },
  status: {
    summary: "print a node's status",
    load: async () => (await import('./status-commands.js')).status,
  },
  ring: {
    summary: "list the members, or a key's replicas",
    load: async () => (await import('./status-commands.js')).ring,
  },
  export: {
    summary: "write the cluster's entries (or a key range) as JSON lines",
    load: async () => (await import('./transfer-commands.js')).exportCommand,
  },
  import: {
    summary: 'store the entries of an export',
    load: async () => (await import('./transfer-commands.js')).importCommand,
  },
  snapshot: {
    summary: 'make a node write a snapshot of its data while it serves',
    load: async () => (await import('./backup-commands.js')).snapshot,
  },
  restore: {
    summary: 'build a data directory from a snapshot',
    load: async () => (await import('./backup-commands.js')).restore,
  },
  decommission: {
    summary: 'take a node out of the cluster: it streams its data away, then exits',
    load: async () => (await import('./move-commands.js')).decommission,
  },
  remove: {
    summary: 'take a dead node out: its ranges are rebuilt from the other replicas',
    load: async () => (await import('./move-commands.js')).remove,
  },
  cancel: {
    summary: 'give up the move under way (a join, decommission, remove or replace)',
    load: async () => (await import('./move-commands.js')).cancel,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, entry]) => `  ${name.padEnd(width)}  ${entry.summary}`);
  return `Usage: ringkv <command> [flags]

Commands:
${lines.join('\n')}

ringkv help COMMAND (or ringkv COMMAND --help) describes one; ringkv --version prints the version.
`;
}

async function main(args: readonly string[]): Promise<void> {
  const [name, ...rest] = args;
  if (name === undefined) {
    process.stderr.write(usage());
    process.exitCode = 2;
    return;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    if (rest.length > 1) usageError('Too many arguments: expected ringkv help [COMMAND]');
    process.stdout.write(rest[0] === undefined ? usage() : (await commandNamed(rest[0])).usage);
    return;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${await version()}\n`);
    return;
  }
  await (await commandNamed(name)).run(rest);
}

async function commandNamed(name: string): Promise<Command> {
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    usageError(
      `Unknown command ${JSON.stringify(name)}: expected ${Object.keys(COMMANDS).join(', ')} (see ringkv help)`,
    );
  }
  return entry.load();
}

/** The version in package.json, three levels up from dist/src/cli/main.js. */
async function version(): Promise<string> {
  const url = new URL('../../../package.json', import.meta.url);
  const manifest = (await import(url.href, { with: { type: 'json' } })) as { default: { version: string } };
  return manifest.default.version;
}

function usageError(message: string): never {
  fail(message, 2);
}

/** `message` on one line, its control characters escaped: an error may quote a node's text or an argument. */
function fail(message: string, exitCode: number): never {
  complain(message);
  process.exit(exitCode);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(errorMessage(err).split('\n')[0]!, isRingkvError(err, 'RINGKV_CONFIG') ? 2 : 1);
});
