/** File-system errors shaped like Node's, for the vfs implementations that make their own. */

const DESCRIPTIONS: Record<string, [errno: number, text: string]> = {
  EBADF: [-9, 'bad file descriptor'],
  EEXIST: [-17, 'file already exists'],
  EIO: [-5, 'i/o error'],
  EISDIR: [-21, 'illegal operation on a directory'],
  ENOENT: [-2, 'no such file or directory'],
  ENOSPC: [-28, 'no space left on device'],
  ENOTDIR: [-20, 'not a directory'],
  EROFS: [-30, 'read-only file system'],
};

/** An error as node:fs throws it: `code`, `errno`, `syscall`, `path`, and Node's message. */
export function fsError(code: string, syscall: string, path: string, why?: string): NodeJS.ErrnoException {
  const [errno, text] = DESCRIPTIONS[code] ?? [-1, 'error'];
  const err: NodeJS.ErrnoException = new Error(
    `${code}: ${text}, ${syscall} '${path}'${why === undefined ? '' : ` (${why})`}`,
  );
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  err.path = path;
  return err;
}
