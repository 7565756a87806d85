// The hash chain: every audit line carries `prev`, the SHA-256 of the line before it (without its
// newline), so an edited, removed or reordered line breaks the chain at that point.
import { hash } from 'node:crypto';

export const GENESIS = '0'.repeat(64);

export function lineHash(line: string): string {
  return hash('sha256', line, 'hex');
}
