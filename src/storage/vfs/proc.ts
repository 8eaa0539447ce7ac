/**
 * What the host's /proc tells about processes and threads (Linux). These are
 * facts about the machine, not data files, so they are read straight from
 * node:fs whatever vfs the engine runs on; they live here because vfs/ is
 * the one place in storage that imports node:fs.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/** Whether this system has /proc/PID/stat to ask, checked once. */
let procStat: boolean | undefined;

/**
 * The state letter of process `pid` from /proc/PID/stat ('R', 'S', 'Z', ...),
 * 'gone' when /proc no longer lists it, or undefined when /proc cannot tell
 * (no /proc, or hidden by hidepid).
 */
export async function processState(pid: number): Promise<string | undefined> {
  procStat ??= existsSync('/proc/self/stat');
  if (!procStat) return undefined;
  let content: string;
  try {
    content = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : undefined;
  }
  // "PID (COMMAND) STATE ...": the command may hold spaces and parentheses, so the state follows the last ')'.
  return content.charAt(content.lastIndexOf(')') + 2);
}

/** The kernel's id of the calling thread (Linux), or undefined elsewhere. */
export function ownThreadId(): number | undefined {
  try {
    const threadId = Number(basename(readlinkSync('/proc/thread-self')));
    return Number.isInteger(threadId) && threadId > 0 ? threadId : undefined;
  } catch {
    return undefined;
  }
}
