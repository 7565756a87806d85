// config.schema.json and the reference tables of docs/configuration.md are generated from the section
// schemas: they must be up to date, and every example config in the repository must pass the schema.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, configFromYaml } from '../../src/config/index.js';
import { configJsonSchemaText } from '../../src/config/json-schema.js';
import { renderReference } from '../../src/config/reference.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (rel: string): string => readFileSync(join(repo, rel), 'utf8');
const EXAMPLE = 'systemd/config.example.yaml';

/** Every ```yaml block of the docs and the README (they are all config snippets). */
function docExamples(): Array<[string, string]> {
  const files = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: Array<[string, string]> = [];
  for (const file of files) {
    const blocks = [...read(file).matchAll(/```yaml\n([\s\S]*?)```/g)];
    blocks.forEach((m, i) => out.push([`${file} #${i + 1}`, m[1] as string]));
  }
  return out;
}

function configError(text: string): ConfigError {
  try {
    configFromYaml(text, { sourceName: 'broken.yaml', baseDir: '/etc/rustfs-kms' });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('generated outputs', () => {
  it('config.schema.json is the dump of the section schemas (run npm run gen:config)', () => {
    expect(read('config.schema.json')).toBe(configJsonSchemaText());
  });

  it('the reference tables in docs/configuration.md are up to date (run npm run gen:config)', () => {
    const doc = read('docs/configuration.md');
    expect(renderReference(doc)).toBe(doc);
  });

  it('a stale or missing docs block is detected', () => {
    const doc = read('docs/configuration.md');
    const stale = doc.replace('| `limits.max_connections` | int 1–65536 |', '| `limits.max_connections` | int 1–1024 |');
    expect(stale).not.toBe(doc);
    expect(renderReference(stale)).toBe(doc);
    const withoutLimits = doc.replace(/<!-- BEGIN GENERATED: limits -->[\s\S]*?<!-- END GENERATED: limits -->/, '');
    expect(() => renderReference(withoutLimits)).toThrow(/no marker for generated block\(s\) limits/);
  });

  it('the package ships config.schema.json', () => {
    const pkg = JSON.parse(read('package.json')) as { files: string[] };
    expect(pkg.files).toContain('config.schema.json');
  });
});

describe('config.schema.json', () => {
  const schema = JSON.parse(read('config.schema.json')) as Record<string, unknown>;
  type Node = { type?: string; properties?: Record<string, Node>; items?: Node; anyOf?: Node[]; [k: string]: unknown };

  it('describes the YAML file: snake_case keys, closed mappings, descriptions, defaults, ranges, enums', () => {
    const props = (schema as Node).properties ?? {};
    expect(Object.keys(props)).toContain('admin_http');
    const limits = props.limits?.properties ?? {};
    expect(limits.max_frame_bytes).toMatchObject({ type: 'integer', minimum: 1024, maximum: 16_777_216, default: 1_048_576 });
    expect(typeof limits.max_frame_bytes?.description).toBe('string');
    expect(props.root?.properties?.type).toMatchObject({ type: 'string', enum: ['local', 'pkcs11', 'vault-transit', 'aws-kms', 'gcp-kms', 'azure-keyvault'], default: 'local' });
    expect(props.socket?.properties?.mode).toMatchObject({ type: 'string', pattern: '^0?[0-7]{3}$', default: '0660' });
    expect(props.admin_http?.required).toEqual(['listen', 'access_key', 'secret_key_file']);

    // Every mapping is closed, so an editor flags a typo exactly where the daemon would.
    const open: string[] = [];
    const walk = (node: Node, at: string): void => {
      if (node.type === 'object') {
        if (node.additionalProperties !== false) open.push(at);
        for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, `${at}.${k}`);
      }
      if (node.items !== undefined) walk(node.items, `${at}[]`);
    };
    walk(schema as Node, '$');
    expect(open).toEqual([]);
  });

  it('carries none of the in-process annotations', () => {
    expect(read('config.schema.json')).not.toMatch(/"(expected|refine|docType|docDefault|hints)"/);
  });
});

describe('example configs', () => {
  it(`${EXAMPLE} names the schema on its first line, and the path resolves`, () => {
    const first = read(EXAMPLE).split('\n')[0] as string;
    const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    expect(m).not.toBeNull();
    expect(existsSync(resolve(repo, 'systemd', (m as RegExpExecArray)[1] as string))).toBe(true);
  });

  const examples: Array<[string, string]> = [[EXAMPLE, read(EXAMPLE)], ...docExamples()];

  it('finds the examples in docs/ and the README', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  for (const [name, text] of examples) {
    it(`${name} passes the schema`, () => {
      // Secrets and vault addresses are not needed for the structural check; the full pipeline needs
      // what the example's root would need, so give it a token and the variables it names.
      const env = { RUSTFS_KMS_VAULT_TOKEN: 'hvs.example', RUSTFS_KMS_PKCS11_PIN: '1234' };
      expect(() => configFromYaml(text, { sourceName: name, baseDir: '/etc/rustfs-kms', env })).not.toThrow();
    });
  }

  it('a broken copy of the example fails with the field path and position', () => {
    const text = read(EXAMPLE);
    const typo = configError(text.replace('max_connections: 1024', 'max_conections: 1024'));
    expect(typo.field).toBe('limits.max_conections');
    expect(typo.message).toMatch(/unknown key; expected one of max_frame_bytes, max_connections/);
    expect(typo.location).toMatch(/^broken\.yaml:\d+:\d+$/);
    const wrongType = configError(text.replace('idle_ttl_s: 300', 'idle_ttl_s: "5m"'));
    expect(wrongType.message).toMatch(/^config: cache\.idle_ttl_s: expected an integer number of seconds from 0 to 604800, got "5m" \(broken\.yaml:\d+:\d+\)$/);
  });
});
