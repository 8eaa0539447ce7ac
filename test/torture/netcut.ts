/**
 * Cutting one node off from its peers with iptables, while clients still
 * reach it: a partition between replicas, not an outage.
 *
 * Every node runs under a group id of its own (cluster.ts), and the
 * `owner` match tells a packet's sending process by it. All traffic is on
 * lo and every packet passes OUTPUT, so cutting node X takes, in a chain of
 * this run's own (jumped to from OUTPUT for lo):
 *
 *   X's packets to any peer's port           -m owner --gid-owner X --dport P(peer)   DROP
 *   each peer's packets to X's port          -m owner --gid-owner Y --dport P(X)      DROP
 *
 * which stops both links of each pair (each node opens its own to each
 * peer). The torture's own requests come from root's group and pass.
 * heal() flushes the chain; teardown() removes it and the jump, and runs at
 * process exit too, so no rule outlives the run.
 */
import { execFileSync } from 'node:child_process';

export interface CutTarget {
  readonly port: number;
  readonly gid: number;
}

export class NetCut {
  readonly #chain: string;
  /** Why partitions are skipped, or undefined when they can be made. */
  readonly unavailable: string | undefined;
  #installed = false;

  private constructor(chain: string, unavailable: string | undefined) {
    this.#chain = chain;
    this.unavailable = unavailable;
  }

  /** Creates this run's chain if iptables and its owner match work here (root, the binary, the kernel module). */
  static setup(): NetCut {
    const chain = `ringkv-torture-${process.pid}`;
    if (process.getuid?.() !== 0) return new NetCut(chain, 'not root');
    const probe = new NetCut(chain, undefined);
    try {
      iptables(['-N', chain]);
    } catch (err) {
      return new NetCut(chain, `iptables unusable: ${message(err)}`);
    }
    probe.#installed = true;
    process.once('exit', () => probe.teardown());
    try {
      iptables(['-A', chain, '-p', 'tcp', '-m', 'owner', '--gid-owner', '1', '--dport', '1', '-j', 'DROP']);
      iptables(['-F', chain]);
      iptables(['-I', 'OUTPUT', '-o', 'lo', '-j', chain]);
    } catch (err) {
      probe.teardown();
      return new NetCut(chain, `iptables owner match unusable: ${message(err)}`);
    }
    return probe;
  }

  /** Drops every packet between `target` and `peers`, both ways. */
  cut(target: CutTarget, peers: readonly CutTarget[]): void {
    for (const peer of peers) {
      iptables(['-A', this.#chain, ...rule(target.gid, peer.port)]);
      iptables(['-A', this.#chain, ...rule(peer.gid, target.port)]);
    }
  }

  /** Removes every rule of the chain (idempotent). */
  heal(): void {
    if (this.#installed) iptables(['-F', this.#chain]);
  }

  /** Removes the jump and the chain (idempotent; errors ignored, as at exit nothing can be done about them). */
  teardown(): void {
    if (!this.#installed) return;
    this.#installed = false;
    for (const args of [
      ['-D', 'OUTPUT', '-o', 'lo', '-j', this.#chain],
      ['-F', this.#chain],
      ['-X', this.#chain],
    ]) {
      try {
        iptables(args);
      } catch {
        // Already gone (the jump is absent when the probe failed before adding it).
      }
    }
  }
}

function rule(gid: number, port: number): string[] {
  return ['-p', 'tcp', '-m', 'owner', '--gid-owner', String(gid), '--dport', String(port), '-j', 'DROP'];
}

function iptables(args: readonly string[]): void {
  // -w: wait for the xtables lock rather than fail when another iptables runs.
  execFileSync('iptables', ['-w', '5', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function message(err: unknown): string {
  const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
  if (stderr) return stderr.split('\n')[0]!;
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}
