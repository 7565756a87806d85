// Every procedure in the README and docs/ runs as printed. A procedure is a ```sh block right after
// an HTML comment `<!-- procedure: NAME -->`; this test extracts the block from the document itself
// and runs it with `bash -e -o pipefail -c BLOCK`, so a document cannot drift from the code.
//
// The only substitutions, all for where things live, none in the commands:
// - TMPDIR is a fresh temp dir of this test (so `mktemp -d` lands there) and the block runs in it;
// - `rustfs-kms` and `rustfs-kmsd` on PATH are this checkout's built CLI and daemon (what
//   `npm install -g rustfs-kms` puts on PATH);
// - the README quick start runs in a copy of the checkout (package.json, with dist/, build/ and
//   node_modules/ linked to this one's), after `npm start` was started there as the README says; its
//   first block (`npm ci && npm start`, `npm test`) is what runs this test, so it is not run again.
// npm runs with npm_config_offline=true: the procedures need no network.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_JS, DAEMON_JS, canConnect, cleanEnv, cleanupTempDirs, makeTempDir, repoRoot, waitFor } from '../helpers/daemon.js';

interface Procedure { name: string; file: string; script: string }

function procedures(): Procedure[] {
  const files = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  const out: Procedure[] = [];
  for (const file of files) {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    for (const m of text.matchAll(/<!-- procedure: ([\w-]+) -->\s*```sh\n([\s\S]*?)```/g)) {
      out.push({ name: m[1] as string, file, script: m[2] as string });
    }
  }
  return out;
}

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `script` in its own process group (anything it leaves running is killed afterwards). */
function runScript(script: string, cwd: string, tmp: string): Promise<Run> {
  const bin = join(tmp, '.bin');
  mkdirSync(bin, { recursive: true });
  for (const [name, js] of [['rustfs-kms', CLI_JS], ['rustfs-kmsd', DAEMON_JS]] as const) {
    writeFileSync(join(bin, name), `#!/bin/sh\nexec "${process.execPath}" "${js}" "$@"\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const env = cleanEnv({ PATH: `${bin}:${process.env.PATH ?? ''}`, TMPDIR: tmp, npm_config_offline: 'true', SOFTHSM2_CONF: undefined });
  return new Promise((resolve) => {
    const p = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => killGroup(p.pid as number), 120_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      killGroup(p.pid as number);
      resolve({ code, stdout, stderr });
    });
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

type Runner = (p: Procedure) => Promise<void>;

const RUNNERS: Record<string, { skip?: string; run: Runner }> = {
  'readme-quick-start': {
    async run(p) {
      const checkout = makeTempDir('kms-doc-checkout-');
      copyFileSync(join(repoRoot, 'package.json'), join(checkout, 'package.json'));
      for (const d of ['dist', 'build', 'node_modules']) symlinkSync(join(repoRoot, d), join(checkout, d));
      const daemon = spawn('npm', ['start'], {
        cwd: checkout, detached: true, stdio: 'ignore', env: cleanEnv({ npm_config_offline: 'true' }),
      });
      try {
        await waitFor(() => canConnect(join(checkout, '.kms', 'kms.sock')), 30_000, 'npm start to serve on ./.kms/kms.sock');
        const r = await runScript(p.script, checkout, makeTempDir('kms-doc-tmp-'));
        expect(r.code, `${p.file} ${p.name}:\n${r.stderr}`).toBe(0);
        const hex = /plaintext \(hex\):\s*([0-9a-f]{64})/.exec(r.stdout)?.[1];
        expect(hex, r.stdout).toBeDefined();
        expect(r.stdout.split('\n')).toContain(hex); // xxd of the decrypted dk.bin: the same data key
        expect(r.stdout).toMatch(/my-key\s+Enabled\s+1/);
      } finally {
        killGroup(daemon.pid as number);
      }
    },
  },
  'pkcs11-softhsm': {
    ...(!have('softhsm2-util') || !have('pkcs11-tool') || !existsSync(SOFTHSM_MODULE)
      ? { skip: `needs softhsm2-util, pkcs11-tool and ${SOFTHSM_MODULE} (scripts/install-test-deps.sh installs them)` } : {}),
    async run(p) {
      const tmp = makeTempDir('kms-doc-tmp-');
      const r = await runScript(p.script, tmp, tmp);
      expect(r.code, `${p.file} ${p.name}:\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('created  root key');
      expect(r.stdout).toMatch(/healthy:\s+true/);
      expect(r.stdout).toMatch(/key:\s+hsm-test/);
      expect(r.stdout).toContain('never extractable');
    },
  },
  'without-systemd': {
    async run(p) {
      const tmp = makeTempDir('kms-doc-tmp-');
      const r = await runScript(p.script, tmp, tmp);
      expect(r.code, `${p.file} ${p.name}:\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/healthy:\s+true/);
      expect(r.stdout).toContain('backed up 1 key record(s)');
      expect(r.stdout).toMatch(/^OK: \d+ records/m);
    },
  },
};

afterAll(() => cleanupTempDirs());

describe('procedures in the documents', () => {
  const found = procedures();

  it('are found, and each has a runner here (a new procedure needs one)', () => {
    expect(found.map((p) => p.name).sort()).toEqual(Object.keys(RUNNERS).sort());
  });

  for (const p of found) {
    const runner = RUNNERS[p.name];
    if (runner === undefined) continue; // reported by the test above
    it.skipIf(runner.skip !== undefined)(`${p.file}: ${p.name} runs as printed${runner.skip !== undefined ? ` (skipped: ${runner.skip})` : ''}`, () => runner.run(p), 180_000);
  }
});
