// Durable file replacement, the one copy every part uses (state files, journals, tokens, consent
// requests): write a temp file, fsync it, rename it over the target, fsync the directory — so after
// a crash the file is either the old or the new content, never empty or torn. Node's fs has no such
// call (writeFileSync neither fsyncs nor renames), and it is too small to be worth a dependency.
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface AtomicWriteOptions {
  /** the file's mode, set on the temp file with fchmod (umask does not apply); default: open's 0o666 less umask */
  mode?: number;
  /** temp file path (default `<file>.tmp`); must be in the same directory */
  tmp?: string;
  /** create the temp file exclusively (O_EXCL: never through a planted file or symlink) */
  exclusive?: boolean;
}

/** Replaces `file` by `data` atomically and durably. On failure the temp file is removed and `file` is untouched. */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[], o: AtomicWriteOptions = {}): void {
  const tmp = o.tmp ?? `${file}.tmp`;
  const fd = openSync(tmp, o.exclusive ? 'wx' : 'w', o.mode ?? 0o666);
  try {
    if (o.mode !== undefined) fchmodSync(fd, o.mode);
    const chunks = typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
    for (const c of chunks) writeAll(fd, c);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  syncDir(dirname(file));
}

/** fsyncs a directory, so a rename or create in it survives a crash. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
}
