// YAML text → plain values, with the position of every field for error messages. YAML 1.2 core only,
// no tags, no merge keys, bounded aliases, nodes and depth (a config file is small; a bomb is not).
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { ConfigError } from './errors.js';

export const MAX_YAML_ALIASES = 100;
export const MAX_YAML_NODES = 100_000;
export const MAX_YAML_DEPTH = 64;

export type YamlObject = { [key: string]: unknown };

export function isYamlObject(v: unknown): v is YamlObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ParsedYaml {
  /** Mappings are null-prototype objects; an empty value is null. */
  value: unknown;
  /** "FILE:LINE:COL" of a dotted field ("policy[0].allow[1]"); the source name when it has no position. */
  locate(field: string): string | undefined;
}

interface Pos {
  line: number;
  col: number;
}

export function parseYaml(text: string, sourceName: string | undefined): ParsedYaml {
  const field = sourceName ?? '(yaml)';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.2',
    schema: 'core',
    uniqueKeys: true,
    customTags: [],
    resolveKnownTags: false,
    merge: false,
    strict: true,
    prettyErrors: true,
    lineCounter,
  });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const what =
      problem.code === 'TAG_RESOLVE_FAILED'
        ? 'tags outside the YAML 1.2 core schema are not accepted: '
        : problem.code === 'DUPLICATE_KEY'
          ? 'a key appears twice: '
          : '';
    throw new ConfigError(field, 'valid YAML', { detail: `invalid YAML: ${what}${problem.message.trimEnd()}` });
  }

  const positions = new Map<string, Pos>();
  let aliases = 0;
  let nodes = 0;
  const format = (p: Pos): string =>
    sourceName !== undefined ? `${sourceName}:${p.line}:${p.col}` : `line ${p.line}, column ${p.col}`;
  const posOf = (range: readonly number[] | null | undefined): Pos | undefined =>
    range && typeof range[0] === 'number' ? lineCounter.linePos(range[0]) : undefined;
  const record = (p: string, range: readonly number[] | null | undefined): void => {
    const pos = posOf(range);
    if (pos !== undefined) positions.set(p, pos);
  };
  const where = (range: readonly number[] | null | undefined): string | undefined => {
    const pos = posOf(range);
    return pos === undefined ? sourceName : format(pos);
  };
  const label = (p: string): string => (p === '' ? '(top level)' : p);

  const walk = (node: unknown, p: string, depth: number): unknown => {
    nodes += 1;
    if (nodes > MAX_YAML_NODES || depth > MAX_YAML_DEPTH) {
      throw new ConfigError(label(p), 'a config document of reasonable size', {
        detail: `the document is too large or too deeply nested (at most ${MAX_YAML_NODES} values, depth ${MAX_YAML_DEPTH})`,
      });
    }
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      aliases += 1;
      const target = node.resolve(doc);
      if (aliases > MAX_YAML_ALIASES || target === undefined) {
        throw new ConfigError(label(p), 'an alias to an earlier anchor', {
          detail: target === undefined ? `unresolved alias *${node.source}` : `more than ${MAX_YAML_ALIASES} aliases`,
          location: where(node.range),
        });
      }
      const value = walk(target, p, depth + 1);
      record(p, node.range);
      return value;
    }
    if (isScalar(node)) {
      record(p, node.range);
      const v: unknown = node.value;
      if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      throw new ConfigError(label(p), 'a string, number, boolean or mapping', {
        got: typeof v === 'number' ? String(v) : typeof v,
        location: where(node.range),
      });
    }
    if (isMap(node)) {
      record(p, node.range);
      const out = Object.create(null) as YamlObject;
      for (const pair of node.items) {
        const k: unknown = pair.key;
        if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number')) {
          const range = isScalar(k) || isMap(k) || isSeq(k) ? k.range : node.range;
          throw new ConfigError(label(p), 'mapping keys that are plain strings', {
            detail: 'mapping keys must be plain strings',
            location: where(range),
          });
        }
        const key = String(k.value);
        const child = p === '' ? key : `${p}.${key}`;
        const value = walk(pair.value, child, depth + 1);
        if (pair.value === null || pair.value === undefined) record(child, k.range);
        out[key] = value;
      }
      return out;
    }
    if (isSeq(node)) {
      record(p, node.range);
      return node.items.map((item, i) => walk(item, `${p}[${i}]`, depth + 1));
    }
    throw new ConfigError(label(p), 'a YAML scalar, mapping or list', { detail: 'unsupported YAML node' });
  };
  const value = walk(doc.contents, '', 0);
  return {
    value,
    locate: (f) => {
      const pos = positions.get(f);
      return pos === undefined ? sourceName : format(pos);
    },
  };
}
