// The command table is the one source of the CLI's parsing, --help, completion and the README's CLI
// table: every command's help names every option it takes, usage mistakes are short (exit 2), and
// the README block is exactly what the table renders.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { README_BEGIN, README_END, readmeTable } from '../../src/cli/help.js';
import { CLI_JS, cleanEnv, repoRoot, runCli } from '../helpers/daemon.js';

describe('help', () => {
  for (const c of COMMANDS.filter((x) => x.path[0] !== 'help')) {
    it(`${c.path.join(' ')} --help names its own options and exits 0`, async () => {
      const r = await runCli([...c.path, '--help']);
      expect(r.code, r.stderr).toBe(0);
      const text = r.stdout.toString();
      expect(text.startsWith(`usage: rustfs-kms ${c.path.join(' ')}`)).toBe(true);
      for (const o of c.options) expect(text).toContain(`--${o.name}`);
      expect(text).toContain(c.summary);
      // the same through `help WORDS`
      expect((await runCli(['help', ...c.path])).stdout.toString()).toBe(text);
    });
  }

  it('the help of two different commands differs (not one global usage for all)', async () => {
    const a = (await runCli(['key', 'create', '--help'])).stdout.toString();
    const b = (await runCli(['datakey', '--help'])).stdout.toString();
    expect(a).not.toBe(b);
    expect(a).not.toContain('--ciphertext-out');
  });

  it('--help and help alone print the command list and exit 0', async () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      for (const c of COMMANDS) expect(r.stdout.toString()).toContain(c.path.join(' '));
    }
  });
});

describe('usage mistakes: exit 2, two lines, a pointer to the right --help', () => {
  const cases: Array<[string, string[], RegExp, string]> = [
    ['no command at all', [], /no command given/, 'rustfs-kms --help'],
    ['a group word alone', ['key'], /"key" needs a subcommand: create, status, list/, 'rustfs-kms key --help'],
    ['an extra argument', ['key', 'create', 'a', 'b'], /key create takes KEY; unexpected "b"/, 'rustfs-kms key create --help'],
    ['arguments to a command that takes none', ['health', 'now'], /health takes no arguments; unexpected "now"/, 'rustfs-kms health --help'],
    ['another command\'s option', ['key', 'status', 'k', '--ciphertext-out', 'x'], /key status does not take --ciphertext-out/, 'rustfs-kms key status --help'],
    ['a string option without its value', ['key', 'list', '--limit'], /--limit needs a value/, 'rustfs-kms key list --help'],
    ['a repeated single option', ['key', 'delete', 'k', '--pending-days', '7', '--pending-days', '8'], /--pending-days given more than once/, 'rustfs-kms key delete --help'],
    ['a bad completion shell', ['completion', 'fish'], /SHELL must be one of bash, zsh/, 'rustfs-kms completion --help'],
  ];
  for (const [what, args, message, pointer] of cases) {
    it(what, async () => {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(message);
      expect(lines[1]).toBe(`see "${pointer}"`);
      expect(r.stdout.length).toBe(0);
    });
  }
});

describe('the README', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

  it('carries the CLI table rendered from the command table (npm run docs:cli)', () => {
    const start = readme.indexOf(README_BEGIN);
    const end = readme.indexOf(README_END);
    expect(start, 'README has the generated-table markers').toBeGreaterThan(0);
    expect(readme.slice(start + README_BEGIN.length, end).trim()).toBe(readmeTable().trim());
  });

  it('names every flag of every command (the table) and none that does not exist', () => {
    const block = readme.slice(readme.indexOf(README_BEGIN), readme.indexOf(README_END));
    for (const c of COMMANDS.filter((x) => x.path[0] !== 'help')) {
      for (const o of c.options) expect(block, `${c.path.join(' ')} --${o.name}`).toContain(`--${o.name}`);
    }
    for (const flag of ['--pending-days', '--rotation-period-days', '--description', '--tag', '--without-plaintext', '--force', '--dry-run', '--key-file']) {
      expect(block).toContain(flag);
    }
  });

  it('runs the CLI without npx (which installs, rebuilds dist/ and takes seconds)', () => {
    const shBlocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
    for (const b of shBlocks) expect(b).not.toMatch(/^\s*npx rustfs-kms/m);
    expect(readme).toContain('npm run -s kms --');
  });
});

describe('npm run -s kms', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

  it('is the built CLI, with no pre-script that could rebuild', () => {
    expect(pkg.scripts.kms).toBe('node dist/src/cli/main.js');
    expect(pkg.scripts.prekms).toBeUndefined();
    expect(pkg.scripts.postkms).toBeUndefined();
  });

  it('runs offline, prints only the CLI\'s output, and leaves dist/ as it was', () => {
    const before = statSync(CLI_JS).mtimeMs;
    const r = spawnSync('npm', ['run', '-s', 'kms', '--', '--version'], {
      cwd: repoRoot, encoding: 'utf8', env: cleanEnv({ npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' }),
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rustfs-kms \d+\.\d+\.\d+\n$/);
    expect(statSync(CLI_JS).mtimeMs).toBe(before);
  });
});

describe('shell completion', () => {
  function complete(words: string[]): string[] {
    const script = spawnSync(process.execPath, [CLI_JS, 'completion', 'bash'], { encoding: 'utf8' }).stdout;
    const line = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _rustfs_kms; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', line], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.split('\n').filter((s) => s !== '');
  }

  it('bash: commands, subcommands and each command\'s options', () => {
    expect(complete(['rustfs-kms', 'da'])).toEqual(['datakey']);
    expect(complete(['rustfs-kms', 'key', 'c']).sort()).toEqual(['cancel-delete', 'create']);
    expect(complete(['rustfs-kms', 'key', 'create', 'k', '--r'])).toEqual(['--rotation-period-days']);
    expect(complete(['rustfs-kms', '--socket', '/tmp/s', 'datakey', 'k', '--ciph'])).toEqual(['--ciphertext-out']);
    expect(complete(['rustfs-kms', 'completion', ''])).toEqual(expect.arrayContaining(['bash', 'zsh']));
  });

  it('zsh: the same functions through bashcompinit', async () => {
    const r = await runCli(['completion', 'zsh']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain('bashcompinit');
    expect(r.stdout.toString()).toContain('complete -F _rustfs_kms rustfs-kms');
  });
});
