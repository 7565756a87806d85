// The audit log's file: opened append-only with O_NOFOLLOW (a symlink at the path is refused, never
// followed) and created 0600. A write that fails part-way (a full disk) reports how many bytes did
// land, so the log can retry exactly the rest and the file never holds a line twice or torn.
import { closeSync, openSync, writeSync, constants as fsc } from 'node:fs';

const FLAGS = fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW; // libuv adds O_CLOEXEC itself

export class AppendFile {
  private handle: number;

  constructor(private readonly path: string) {
    this.handle = openSync(path, FLAGS, 0o600);
  }

  get fd(): number {
    return this.handle;
  }

  /** Writes all of `data`; on failure returns the error and the bytes that were not written. */
  write(data: Buffer): { error: NodeJS.ErrnoException; rest: Buffer } | null {
    let offset = 0;
    while (offset < data.length) {
      try {
        offset += writeSync(this.handle, data, offset, data.length - offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' || (err as NodeJS.ErrnoException).code === 'EINTR') continue;
        return { error: err as NodeJS.ErrnoException, rest: data.subarray(offset) };
      }
    }
    return null;
  }

  /** After a rename (rotation): a fresh file at the same path. */
  reopen(): void {
    const next = openSync(this.path, FLAGS, 0o600);
    closeSync(this.handle);
    this.handle = next;
  }

  close(): void {
    closeSync(this.handle);
  }
}
