// Building blocks for the section schemas. A field is declared once, as a TypeBox schema (which is JSON
// Schema), plus a few annotations under a symbol key that JSON.stringify leaves out of config.schema.json:
// the "expected ..." phrase of error messages, the secret-key hints, the docs' type and default columns,
// and a refinement (path resolution, URL checks) that runs after the structural check.
import {
  Type, type Static, type TArray, type TBoolean, type TInteger, type TLiteral, type TObject,
  type TProperties, type TSchema, type TString, type TUnion,
} from '@sinclair/typebox';
import type { FieldErrors } from './errors.js';

export const Meta: unique symbol = Symbol.for('rustfs-kms.config.meta');

/** What a refinement may use: where relative paths resolve, and how to fail for this field. */
export interface RefineContext {
  readonly field: string;
  /** Relative paths resolve against this; undefined = relative paths are errors. */
  readonly baseDir: string | undefined;
  readonly errors: FieldErrors;
}

export interface FieldMeta {
  /** The phrase after "expected" in errors ("an integer number of seconds"); integer ranges are appended. */
  expected?: string;
  /** Message for a required field that is absent. */
  missing?: { expected: string; when?: string };
  /** Keys refused with a pointer to the right option (secrets never go in the file). */
  hints?: Readonly<Record<string, string>>;
  /** A full "expected ..., got ..." text for values that deserve a better message; undefined = default. */
  detail?: (value: unknown) => string | undefined;
  /** Runs after the structural check on a present value; returns the value to keep. */
  refine?: (value: string, ctx: RefineContext) => string;
  /** docs/configuration.md columns, when the schema alone does not say it well. */
  docType?: string;
  docDefault?: string;
}

export type Annotated<T extends TSchema> = T & { [Meta]?: FieldMeta };

export function metaOf(schema: TSchema): FieldMeta {
  return (schema as Annotated<TSchema>)[Meta] ?? {};
}

export function annotate<T extends TSchema>(schema: T, meta: FieldMeta): Annotated<T> {
  return Object.assign(schema, { [Meta]: meta });
}

interface Common extends FieldMeta {
  description: string;
}

type Defaulted<T> = { default?: T };

export function str(o: Common & Defaulted<string> & { pattern?: RegExp; minLength?: number; maxLength?: number }): Annotated<TString> {
  const { description, pattern, minLength, maxLength, default: def, ...meta } = o;
  return annotate(
    Type.String({
      description,
      ...(pattern !== undefined ? { pattern: pattern.source } : {}),
      ...(minLength !== undefined ? { minLength } : {}),
      ...(maxLength !== undefined ? { maxLength } : {}),
      ...(def !== undefined ? { default: def } : {}),
    }),
    meta,
  );
}

export function int(o: Common & Defaulted<number> & { min: number; max: number }): Annotated<TInteger> {
  const { description, min, max, default: def, ...meta } = o;
  return annotate(Type.Integer({ description, minimum: min, maximum: max, ...(def !== undefined ? { default: def } : {}) }), meta);
}

export function bool(o: Common & Defaulted<boolean>): Annotated<TBoolean> {
  const { description, default: def, ...meta } = o;
  return annotate(Type.Boolean({ description, ...(def !== undefined ? { default: def } : {}) }), { expected: 'true or false', ...meta });
}

export function oneOf<const V extends readonly string[]>(
  values: V,
  o: Common & Defaulted<V[number]>,
): Annotated<TUnion<TLiteral<V[number]>[]>> {
  const { description, default: def, ...meta } = o;
  const literals = values.map((v: V[number]) => Type.Literal(v));
  return annotate(Type.Union(literals, { description, ...(def !== undefined ? { default: def } : {}) }), {
    expected: `one of ${values.join(', ')}`,
    docType: 'enum',
    ...meta,
  });
}

export function list<T extends TSchema>(items: T, o: Common & Defaulted<Static<T>[]> & { minItems?: number }): Annotated<TArray<T>> {
  const { description, minItems, default: def, ...meta } = o;
  return annotate(
    Type.Array(items, { description, ...(minItems !== undefined ? { minItems } : {}), ...(def !== undefined ? { default: def } : {}) }),
    meta,
  );
}

/** A mapping whose keys are exactly `properties` (unknown keys are errors that list the allowed ones). */
export function section<P extends TProperties>(
  properties: P,
  o: Common & { minProperties?: number; maxProperties?: number },
): Annotated<TObject<P>> {
  const { description, minProperties, maxProperties, ...meta } = o;
  return annotate(
    Type.Object(properties, {
      description,
      additionalProperties: false,
      ...(minProperties !== undefined ? { minProperties } : {}),
      ...(maxProperties !== undefined ? { maxProperties } : {}),
    }),
    meta,
  );
}

/** An optional field: absent (or empty in the YAML) means the default. Keeps the annotations. */
export function optional<T extends TSchema>(schema: T) {
  return Type.Optional(schema);
}

// ---------------------------------------------------------------------------------------------------------
// snake_case file names → camelCase config names, at the type level and at run time.

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
export type CamelKeys<T> = { [K in keyof T as K extends string ? Camel<K> : K]: T[K] };

export function camelName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Shallow: the sections that use it hold only scalars and lists of scalars. */
export function camelKeys<T extends object>(value: T): CamelKeys<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[camelName(k)] = v;
  return out as CamelKeys<T>;
}

/** The `default` of every property that has one, camelCased: the section's built-in values. */
export function defaultsOf<P extends TProperties>(schema: TObject<P>): Partial<CamelKeys<Static<TObject<P>>>> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(schema.properties)) {
    const d: unknown = (s as TSchema).default;
    if (d !== undefined) out[camelName(k)] = structuredClone(d);
  }
  return out as Partial<CamelKeys<Static<TObject<P>>>>;
}

/** The declared default of one field (a programming error if it has none). */
export function defaultValue<T extends TSchema>(schema: T): Static<T> {
  const d: unknown = schema.default;
  if (d === undefined) throw new Error('config schema: field has no default');
  return structuredClone(d) as Static<T>;
}
