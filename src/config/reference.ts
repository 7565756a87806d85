// The reference tables of docs/configuration.md, generated from the section schemas and the
// environment bindings, between <!-- BEGIN GENERATED: name --> and <!-- END GENERATED: name --> markers
// (the prose around them is hand-written).
import { Kind, type TObject, type TSchema } from '@sinclair/typebox';
import { ENV_BINDINGS } from './env.js';
import { metaOf } from './field.js';
import { ConfigFileSchema } from './schema.js';
import { PolicySection } from './sections/policy.js';

interface Row {
  key: string;
  schema: TSchema;
  required: boolean;
}

function kindOf(schema: TSchema): string {
  return (schema as { [Kind]?: string })[Kind] ?? '';
}

function propertiesOf(schema: TSchema): TObject['properties'] {
  return (schema as TObject).properties;
}

/** Rows for the fields of `schema`, named `prefix.key`; sub-sections listed in `expand` get their own rows. */
function rows(schema: TSchema, prefix: string, expand: readonly string[] = []): Row[] {
  const required = new Set((schema as TObject).required ?? []);
  return Object.entries(propertiesOf(schema)).flatMap(([k, s]) => {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    return expand.includes(k) ? rows(s, key) : [{ key, schema: s, required: required.has(k) }];
  });
}

function literals(schema: TSchema): string[] | undefined {
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  if (anyOf === undefined || !anyOf.every((s) => typeof s.const === 'string')) return undefined;
  return anyOf.map((s) => s.const as string);
}

function typeText(schema: TSchema): string {
  const meta = metaOf(schema);
  if (meta.docType !== undefined) return meta.docType;
  switch (kindOf(schema)) {
    case 'Integer':
      return `int ${String(schema.minimum)}–${String(schema.maximum)}`;
    case 'Boolean':
      return 'bool';
    case 'Object':
      return 'map';
    case 'Array':
      return 'list';
    default:
      return literals(schema) !== undefined ? 'enum' : 'string';
  }
}

function defaultText(row: Row): string {
  const meta = metaOf(row.schema);
  if (meta.docDefault !== undefined) return meta.docDefault;
  if (row.required) return '**required**';
  const d: unknown = row.schema.default;
  if (d === undefined) return kindOf(row.schema) === 'Object' ? 'see below' : 'unset';
  if (d === '') return '`""`';
  return typeof d === 'string' ? `\`${d}\`` : `\`${JSON.stringify(d)}\``;
}

function meaningText(schema: TSchema): string {
  const values = literals(schema);
  const description = String(schema.description ?? '');
  return values === undefined ? description : `${values.map((v) => `\`${v}\``).join(', ')}. ${description}`;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function fieldTable(list: readonly Row[]): string {
  const lines = ['| key | type | default | meaning |', '|---|---|---|---|'];
  for (const row of list) {
    lines.push(`| \`${row.key}\` | ${cell(typeText(row.schema))} | ${cell(defaultText(row))} | ${cell(meaningText(row.schema))} |`);
  }
  return lines.join('\n');
}

function envTable(): string {
  const lines = ['| variable | sets | accepted values |', '|---|---|---|'];
  for (const b of ENV_BINDINGS) lines.push(`| \`${b.name}\` | ${cell(b.sets)} | ${cell(b.accepts)} |`);
  return lines.join('\n');
}

const file = ConfigFileSchema.properties;
const root = propertiesOf(file.root);
const vault = propertiesOf(root.vault as TSchema);
const rule = (PolicySection as TSchema & { items: TSchema }).items;

/** Block name → its generated markdown. */
export function referenceBlocks(): Record<string, string> {
  const section = (name: keyof typeof file): string => fieldTable(rows(file[name], name));
  return {
    'top-level': fieldTable(rows(ConfigFileSchema, '')),
    socket: section('socket'),
    root: fieldTable([...rows(file.root, 'root').filter((r) => r.key === 'root.type'), ...rows(root.local as TSchema, 'root.local')]),
    'root.pkcs11': fieldTable(rows(root.pkcs11 as TSchema, 'root.pkcs11')),
    'root.vault': fieldTable(rows(root.vault as TSchema, 'root.vault', ['tls']).filter((r) => r.key !== 'root.vault.auth')),
    'root.vault.auth': fieldTable(rows(vault.auth as TSchema, 'root.vault.auth')),
    'root.gcp_kms': fieldTable(rows(root.gcp_kms as TSchema, 'root.gcp_kms')),
    keystore: section('keystore'),
    cache: section('cache'),
    limits: section('limits'),
    audit: section('audit'),
    admin_http: section('admin_http'),
    policy: fieldTable([...rows(rule, 'policy[]'), ...rows(propertiesOf(rule).match as TSchema, 'policy[].match')]),
    hardening: section('hardening'),
    env: envTable(),
  };
}

const BLOCK = /<!-- BEGIN GENERATED: ([\w.-]+) -->\n[\s\S]*?<!-- END GENERATED: \1 -->/g;

/** `markdown` with every generated block rewritten; an unknown or missing block is an error. */
export function renderReference(markdown: string): string {
  const blocks = referenceBlocks();
  const seen = new Set<string>();
  const out = markdown.replace(BLOCK, (_, name: string) => {
    const body = blocks[name];
    if (body === undefined) throw new Error(`docs: unknown generated block "${name}"`);
    seen.add(name);
    return `<!-- BEGIN GENERATED: ${name} -->\n${body}\n<!-- END GENERATED: ${name} -->`;
  });
  const missing = Object.keys(blocks).filter((name) => !seen.has(name));
  if (missing.length > 0) throw new Error(`docs: no marker for generated block(s) ${missing.join(', ')}`);
  return out;
}
