// The guard of the tests that run processes as uid 65534: it names the directory that keeps the
// other user out, and sharedTempDir() never lands under one.
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import { cleanupSharedDirs, othersCannotReach, sharedTempDir } from '../helpers/other-user.js';

afterAll(() => {
  cleanupTempDirs();
  cleanupSharedDirs();
});

describe('reaching files as another user', () => {
  it('names the 0700 directory above a file, and passes a world-readable one', () => {
    const base = makeTempDir('kms-other-');
    chmodSync(base, 0o755);
    const hidden = join(base, 'private');
    mkdirSync(join(hidden, 'checkout'), { recursive: true, mode: 0o700 });
    chmodSync(hidden, 0o700);
    const file = join(hidden, 'checkout', 'main.js');
    writeFileSync(file, '', { mode: 0o644 });
    const open = join(base, 'main.js');
    writeFileSync(open, '', { mode: 0o644 });
    // Only meaningful when the temp dir's own ancestors are open; otherwise that is what it names.
    const why = othersCannotReach([file]);
    expect(why).toMatch(/is not traversable by other users/);
    if (othersCannotReach([open]) === undefined) expect(why).toContain(`${hidden} (mode 700)`);
  });

  it('sharedTempDir() is 0755 with every directory above it traversable', () => {
    const dir = sharedTempDir('kms-other-');
    expect(statSync(dir).mode & 0o777).toBe(0o755);
    writeFileSync(join(dir, 'f'), '', { mode: 0o644 });
    expect(othersCannotReach([join(dir, 'f')])).toBeUndefined();
    expect(dirname(dir)).not.toBe(dir);
  });
});
