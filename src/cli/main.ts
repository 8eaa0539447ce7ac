/**
 * The `ringkv` command: dispatches to a subcommand. Any error that reaches
 * here is reported as one line on stderr with a non-zero exit (2 for bad
 * usage, 1 otherwise), never as a stack trace.
 */
import { errorMessage, isRingkvError } from '../util/errors.js';
import { CLUSTER_USAGE, clusterCommand } from './cluster.js';
import { SERVE_USAGE, serveCommand } from './serve.js';

const USAGE = `Usage: ringkv <command> [flags]

Commands:
  serve     run one node
  cluster   run N local nodes as one cluster

${SERVE_USAGE}
${CLUSTER_USAGE}`;

async function main(args: readonly string[]): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'cluster':
      return clusterCommand(rest);
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    case undefined:
      process.stderr.write(USAGE);
      process.exitCode = 2;
      return;
    default:
      fail(`Unknown command ${JSON.stringify(command)}: expected serve or cluster (see ringkv --help)`, 2);
  }
}

function fail(message: string, exitCode: number): void {
  process.stderr.write(`ringkv: ${message}\n`);
  process.exit(exitCode);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(errorMessage(err).split('\n')[0]!, isRingkvError(err, 'RINGKV_CONFIG') ? 2 : 1);
});
