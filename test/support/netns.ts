/**
 * Hosts in network namespaces, for tests of a cluster spread over several
 * machines: each host is a namespace with its own address on one bridge the
 * test creates (a private /24 in 10.213.0.0/16 that no interface of the
 * machine uses), reached from the test through the bridge's own address.
 * A host can be cut off (its link to the bridge taken down) and brought back.
 * Nothing else on the machine is touched; close() removes the namespaces
 * and the bridge. Needs root and `ip` (iproute2): netnsUnavailable() says why
 * not, for the test to skip with.
 *
 *   const lab = await createLab(5);
 *   const node = await startNode({ ..., host: lab.hosts[0].ip, wrap: lab.hosts[0].wrap });
 *   await lab.cut(0); ... await lab.restore(0);
 *   await lab.close();
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Host {
  /** The namespace's name. */
  readonly name: string;
  readonly ip: string;
  /** Runs a command in the namespace (ip netns exec: the command keeps the PID). */
  readonly wrap: readonly string[];
}

export interface Lab {
  readonly hosts: readonly Host[];
  /** Takes host i's link to the bridge down: it reaches nobody and nobody reaches it. */
  cut(index: number): Promise<void>;
  restore(index: number): Promise<void>;
  /** Removes every namespace and the bridge (safe to call twice). */
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args, { timeout: 10_000 })).stdout;
}

/** Why this machine cannot run the lab (not root, no `ip`, namespaces refused), or undefined. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and a bridge)';
  try {
    await ip('-V');
  } catch {
    return 'needs `ip` from iproute2';
  }
  const probe = `rkvprobe${process.pid % 100_000}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
  } catch (err) {
    return `network namespaces refused here: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  return undefined;
}

export async function createLab(count: number): Promise<Lab> {
  const tag = `rkv${process.pid % 100_000}`;
  const used = await ip('-4', '-o', 'addr', 'show');
  const third = Array.from({ length: 200 }, (_, i) => 20 + ((process.pid + i) % 200)).find(
    (n) => !used.includes(` 10.213.${n}.`),
  );
  if (third === undefined) throw new Error('No free /24 in 10.213.0.0/16 for the test bridge');
  const subnet = `10.213.${third}`;
  const bridge = `${tag}br`;
  const hosts: Host[] = Array.from({ length: count }, (_, i) => ({
    name: `${tag}n${i}`,
    ip: `${subnet}.${11 + i}`,
    wrap: ['ip', 'netns', 'exec', `${tag}n${i}`],
  }));
  let closed = false;
  const lab: Lab = {
    hosts,
    cut: async (index) => {
      await ip('link', 'set', `${tag}v${index}`, 'down');
    },
    restore: async (index) => {
      await ip('link', 'set', `${tag}v${index}`, 'up');
    },
    close: async () => {
      if (closed) return;
      closed = true;
      // The veth pairs go with their namespaces.
      for (const host of hosts) await ip('netns', 'del', host.name).catch(() => undefined);
      await ip('link', 'del', bridge).catch(() => undefined);
    },
  };
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (const [i, host] of hosts.entries()) {
      await ip('netns', 'add', host.name);
      await ip('link', 'add', `${tag}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name);
      await ip('link', 'set', `${tag}v${i}`, 'master', bridge);
      await ip('link', 'set', `${tag}v${i}`, 'up');
      await ip('-n', host.name, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0');
      await ip('-n', host.name, 'link', 'set', 'eth0', 'up');
      await ip('-n', host.name, 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    await lab.close();
    throw err;
  }
  return lab;
}
