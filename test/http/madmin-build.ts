// Builds test/http/madmin-client (Go, against Debian's madmin-go 2.0.7 in /usr/share/gocode, GOPATH
// mode: no module proxy) once per source hash into the system temp dir, or says why it cannot.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GOPATH = '/usr/share/gocode';
const MADMIN_SRC = join(GOPATH, 'src/github.com/minio/madmin-go/kms-commands.go');
const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'madmin-client');

export type MadminBuild = { binary: string } | { skip: string };

export function buildMadminClient(): MadminBuild {
  if (spawnSync('go', ['version'], { encoding: 'utf8' }).status !== 0) {
    return { skip: '`go` is not installed (apt-get install golang-go; scripts/install-test-deps.sh does it)' };
  }
  if (!existsSync(MADMIN_SRC)) {
    return { skip: `madmin-go is not installed at ${MADMIN_SRC} (apt-get install golang-github-minio-madmin-go-dev)` };
  }
  const source = readFileSync(join(SOURCE_DIR, 'main.go'));
  const hash = createHash('sha256').update(source).update(readFileSync(MADMIN_SRC)).digest('hex').slice(0, 16);
  const cached = join(tmpdir(), `rustfs-kms-madmin-client-${hash}`);
  if (existsSync(join(cached, 'madmin-client'))) return { binary: join(cached, 'madmin-client') };
  const work = mkdtempSync(join(tmpdir(), 'rustfs-kms-madmin-build-'));
  const out = join(work, 'madmin-client');
  const built = spawnSync('go', ['build', '-o', out, '.'], {
    cwd: SOURCE_DIR, encoding: 'utf8', timeout: 300_000,
    env: { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOCACHE: join(work, 'cache'), GOPROXY: 'off' },
  });
  if (built.status !== 0) {
    rmSync(work, { recursive: true, force: true });
    return { skip: `building the madmin-go client failed: ${(built.stderr || built.error?.message || '').slice(0, 2000)}` };
  }
  rmSync(join(work, 'cache'), { recursive: true, force: true });
  try {
    renameSync(work, cached); // another run may have won the race: use its copy
  } catch {
    if (existsSync(join(cached, 'madmin-client'))) {
      rmSync(work, { recursive: true, force: true });
      return { binary: join(cached, 'madmin-client') };
    }
    return { binary: out };
  }
  return { binary: join(cached, 'madmin-client') };
}
