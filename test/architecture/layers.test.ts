// The layering of docs/architecture.md, checked over the real import graph: every `import`,
// `export … from` and `import()` in src/ is resolved to its folder, and an edge the table below does
// not allow fails the test with the file and the import. Type-only imports count too: a type that
// crosses a layer the wrong way drags the design with it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** The layer of a source file: its folder under src/, or "base" for src/*.ts, or "index". */
function layerOf(file: string): string {
  const rel = relative(SRC, file).split(sep);
  if (rel.length === 1) return rel[0] === 'index.ts' ? 'index' : 'base';
  return rel[0] as string;
}

// Who may import whom (besides itself). Read top-down: doors onto ops, ops onto keys, keys onto
// keystore and roots, all of them onto crypto and native; config and audit are read by all and
// import no transport. Mirrors docs/architecture.md; change both together.
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  base: [],
  native: ['base'],
  crypto: ['base', 'native'],
  config: ['base', 'access', 'keys'],
  access: ['base', 'native'],
  audit: ['base', 'access', 'config'],
  vault: ['base', 'native', 'config'],
  keystore: ['base', 'native', 'crypto', 'config', 'vault'],
  roots: ['base', 'native', 'crypto', 'config', 'vault', 'keystore'],
  keys: ['base', 'native', 'crypto', 'keystore', 'roots', 'vault'],
  ops: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'keys', 'keystore', 'roots', 'vault'],
  metrics: ['base', 'native', 'config', 'audit', 'keys', 'ops'],
  rpc: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'keys', 'ops', 'metrics'],
  http: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'keys', 'ops', 'metrics'],
  library: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'keys', 'keystore', 'roots', 'ops', 'metrics'],
  daemon: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'vault', 'keystore', 'roots', 'keys', 'ops', 'metrics', 'rpc', 'http'],
  cli: ['base', 'native', 'crypto', 'config', 'access', 'audit', 'vault', 'keystore', 'roots', 'keys', 'ops', 'metrics', 'rpc'],
  index: ['base', 'config', 'ops', 'library', 'rpc'],
};

/** The one door-to-door edge allowed: the library re-exports the socket client (KmsClient). */
const EXCEPTIONS: ReadonlyArray<{ from: string; to: string; why: string }> = [
  { from: 'library/api.ts', to: 'rpc/client.ts', why: 'KmsApi is implemented by KmsClient and KmsManager alike' },
];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName).filter((name) => name.startsWith('.'));
}

interface Edge {
  file: string;
  target: string;
  from: string;
  to: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const spec of importsOf(file)) {
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      out.push({ file: relative(SRC, file), target: relative(SRC, target), from: layerOf(file), to: layerOf(target) });
    }
  }
  return out;
}

describe('layering (docs/architecture.md)', () => {
  const all = edges();

  it('reads the import graph of every source file', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(new Set(all.map((e) => e.from))).toContain('ops');
  });

  it('every folder under src/ has a row in the table', () => {
    const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
    expect(folders.filter((f) => ALLOWED[f] === undefined)).toEqual([]);
  });

  it('no import crosses a layer the wrong way', () => {
    const wrong = all
      .filter((e) => e.from !== e.to)
      .filter((e) => !(ALLOWED[e.from] ?? []).includes(e.to))
      .filter((e) => !EXCEPTIONS.some((x) => x.from === e.file && x.to === e.target))
      .map((e) => `${e.file} imports ${e.target} (${e.from} → ${e.to})`);
    expect(wrong).toEqual([]);
  });

  it('the table itself points downward: no two layers may import each other', () => {
    const cycles: string[] = [];
    for (const [a, targets] of Object.entries(ALLOWED)) {
      for (const b of targets) if ((ALLOWED[b] ?? []).includes(a)) cycles.push(`${a} ⇄ ${b}`);
    }
    expect(cycles).toEqual([]);
  });

  it('only src/daemon imports src/daemon, and only the client re-exports reach src/rpc', () => {
    expect(all.filter((e) => e.to === 'daemon' && e.from !== 'daemon').map((e) => e.file)).toEqual([]);
    const intoRpc = all.filter((e) => e.to === 'rpc' && e.from !== 'rpc' && e.from !== 'daemon' && e.from !== 'cli');
    expect(intoRpc.every((e) => e.target === 'rpc/client.ts')).toBe(true);
  });
});
