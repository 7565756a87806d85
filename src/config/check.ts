// Validation of one source against a section schema: empty values dropped, TypeBox's structural check
// (its first error becomes a ConfigError naming the dotted field and its file:line:col), then the
// per-field refinements (paths, URLs, listen addresses) on the values that passed.
import { Kind, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { quoteList, type FieldErrors } from './errors.js';
import { metaOf } from './field.js';
import { isYamlObject, type YamlObject } from './yaml.js';

function kindOf(schema: TSchema): string {
  return (schema as { [Kind]?: string })[Kind] ?? '';
}

/** Drops empty values of keys the schema knows (absent = default); an empty unknown key is still reported. */
export function pruneEmpty(schema: TSchema, value: unknown): unknown {
  if (Array.isArray(value) && kindOf(schema) === 'Array') {
    const items = (schema as TSchema & { items: TSchema }).items;
    return value.map((v: unknown) => pruneEmpty(items, v));
  }
  if (isYamlObject(value) && kindOf(schema) === 'Object') {
    const properties = (schema as TObject).properties;
    const out = Object.create(null) as YamlObject;
    for (const [k, v] of Object.entries(value)) {
      const property = Object.hasOwn(properties, k) ? properties[k] : undefined;
      if (property === undefined) out[k] = v;
      else if (v !== null) out[k] = pruneEmpty(property, v);
    }
    return out;
  }
  return value;
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** JSON pointer ("/policy/0/allow") → the dotted name used in messages and positions ("policy[0].allow"). */
export function fieldName(root: unknown, pointer: string, prefix = ''): string {
  let name = prefix;
  let cur = root;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = unescapePointer(raw);
    if (Array.isArray(cur)) {
      name += `[${seg}]`;
      cur = cur[Number(seg)] as unknown;
    } else {
      name = name === '' ? seg : `${name}.${seg}`;
      cur = isYamlObject(cur) ? cur[seg] : undefined;
    }
  }
  return name === '' ? '(top level)' : name;
}

/** The "expected ..." phrase of a schema: its annotation, with integer ranges appended. */
export function expectedOf(schema: TSchema): string {
  const meta = metaOf(schema);
  switch (kindOf(schema)) {
    case 'Integer':
      return `${meta.expected ?? 'an integer'} from ${String(schema.minimum)} to ${String(schema.maximum)}`;
    case 'Object':
      return meta.expected ?? `a mapping with keys ${quoteList(Object.keys((schema as TObject).properties))}`;
    case 'Array':
      return meta.expected ?? 'a list';
    case 'Boolean':
      return meta.expected ?? 'true or false';
    default:
      return meta.expected ?? 'a string';
  }
}

function raise(error: ValueError, root: unknown, prefix: string, errors: FieldErrors): never {
  const field = fieldName(root, error.path, prefix);
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const parent = error.schema as TObject;
    const allowed = quoteList(Object.keys(parent.properties));
    const key = unescapePointer(error.path.slice(error.path.lastIndexOf('/') + 1));
    const hint = metaOf(parent).hints?.[key];
    if (hint !== undefined) errors.failDetail(field, hint, `not accepted here; expected ${hint}`);
    errors.failDetail(field, `one of ${allowed}`, `unknown key; expected one of ${allowed}`);
  }
  const schema = error.schema;
  const meta = metaOf(schema);
  const expected = expectedOf(schema);
  const value: unknown = error.type === ValueErrorType.ObjectRequiredProperty ? undefined : error.value;
  const detail = meta.detail?.(value);
  if (detail !== undefined) errors.failDetail(field, expected, detail);
  if (error.type === ValueErrorType.ObjectRequiredProperty) {
    errors.missing(field, meta.missing?.expected ?? expected, meta.missing?.when);
  }
  const pattern = (schema as { pattern?: string }).pattern;
  if ((typeof value === 'number' || typeof value === 'boolean') && pattern !== undefined && new RegExp(pattern).test(String(value))) {
    // YAML made it a number or boolean (2024, 0755, yes); a string of that shape must be quoted.
    errors.failDetail(field, expected, `expected ${expected} as a string (put it in quotes), got the ${typeof value} ${String(value)}`);
  }
  errors.fail(field, expected, value);
}

/** Unknown keys first (a typo explains the rest), then the first other problem in schema order. */
function firstError(schema: TSchema, value: unknown): ValueError | undefined {
  let first: ValueError | undefined;
  for (const error of Value.Errors(schema, value)) {
    if (error.type === ValueErrorType.ObjectAdditionalProperties) return error;
    first ??= error;
  }
  return first;
}

function refine(schema: TSchema, value: unknown, field: string, baseDir: string | undefined, errors: FieldErrors): unknown {
  const kind = kindOf(schema);
  if (kind === 'Object' && isYamlObject(value)) {
    const out = Object.create(null) as YamlObject;
    for (const [k, v] of Object.entries(value)) {
      const property = (schema as TObject).properties[k];
      out[k] = property === undefined ? v : refine(property, v, field === '' ? k : `${field}.${k}`, baseDir, errors);
    }
    return out;
  }
  if (kind === 'Array' && Array.isArray(value)) {
    const items = (schema as TSchema & { items: TSchema }).items;
    return value.map((v: unknown, i: number) => refine(items, v, `${field}[${i}]`, baseDir, errors));
  }
  const fn = metaOf(schema).refine;
  return fn !== undefined && typeof value === 'string' ? fn(value, { field, baseDir, errors }) : value;
}

/**
 * Checks `value` (from the YAML, at dotted `prefix`) against `schema` and returns it typed, with
 * refinements applied. Throws the ConfigError of the first problem.
 */
export function checkValue<T extends TSchema>(
  schema: T,
  value: unknown,
  options: { prefix?: string; baseDir: string | undefined; errors: FieldErrors },
): Static<T> {
  const prefix = options.prefix ?? '';
  const pruned = pruneEmpty(schema, value);
  const error = firstError(schema, pruned);
  if (error !== undefined) raise(error, pruned, prefix, options.errors);
  return refine(schema, pruned, prefix, options.baseDir, options.errors) as Static<T>;
}
