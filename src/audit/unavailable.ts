// Why the audit log cannot take lines right now, in words a client may see (no path, no content).
export class AuditUnavailableError extends Error {
  constructor(message: string, readonly recoverable: boolean) {
    super(message);
    this.name = 'AuditUnavailableError';
  }
}

const CAUSES: Record<string, string> = {
  ENOSPC: 'disk full (ENOSPC)',
  EDQUOT: 'disk quota exceeded (EDQUOT)',
  EFBIG: 'file too large (EFBIG)',
  EIO: 'I/O error (EIO)',
  EROFS: 'read-only file system (EROFS)',
};

/** "disk full (ENOSPC)" and the like; the error's own code or message otherwise. */
export function describeWriteError(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  return CAUSES[code] ?? (code !== '' ? code : err.message);
}
