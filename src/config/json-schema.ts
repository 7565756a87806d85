// config.schema.json: the config file's JSON Schema, dumped from the section schemas, for editors
// (yaml-language-server) and for anyone validating a config without running the daemon.
import { ConfigFileSchema } from './schema.js';

export const CONFIG_SCHEMA_FILE = 'config.schema.json';
/** Where the npm package puts it on a host (npm install -g). */
export const INSTALLED_SCHEMA_PATH = '/usr/lib/node_modules/rustfs-kms/config.schema.json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isStringConst(v: Json): v is { const: string; type: 'string' } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.const === 'string';
}

/** TypeBox writes a union of string literals as anyOf/const; `enum` is what editors complete best. */
function enumify(node: Json): Json {
  if (Array.isArray(node)) return node.map(enumify);
  if (typeof node !== 'object' || node === null) return node;
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) out[k] = enumify(v);
  const anyOf = out.anyOf;
  if (Array.isArray(anyOf) && anyOf.length > 0 && anyOf.every(isStringConst)) {
    const { anyOf: _, ...rest } = out;
    return { type: 'string', enum: anyOf.map((c) => (c as { const: string }).const), ...rest };
  }
  return out;
}

/** The schema as JSON (symbol-keyed TypeBox and message annotations are not part of it). */
export function configJsonSchema(): Json {
  const body = enumify(JSON.parse(JSON.stringify(ConfigFileSchema)) as Json) as { [key: string]: Json };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'rustfs-kmsd configuration',
    ...body,
  };
}

/** The exact text of config.schema.json. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
