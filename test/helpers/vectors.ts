// Locates the shared, read-only test vectors (../shared/vectors next to the repository). They are
// read at test time and never copied into the project.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the directory holding binding.gyp): test/helpers/../.. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ../shared/vectors relative to the repository root. */
export const vectorsDir = resolve(repoRoot, '..', 'shared', 'vectors');

export function vectorPath(name: string): string {
  return join(vectorsDir, name);
}

export function readVectorJson<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(vectorPath(name), 'utf8')) as T;
}

export function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}
