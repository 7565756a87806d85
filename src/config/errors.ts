// The one error type of the config layer: every bad value stops start-up with its field and what was expected.

export interface ConfigErrorOptions {
  /** The offending value, already formatted for display (omit for secrets). */
  got?: string;
  /** "FILE:LINE:COL" (or "line L, column C") for values that came from the YAML. */
  location?: string;
  /** Replaces the default "expected …, got …" text after the field name. */
  detail?: string;
}

/** A configuration value that stops start-up. The message names the field and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Dotted YAML path (e.g. "socket.mode", "policy[0].allow[1]"), environment variable name or CLI flag. */
  readonly field: string;
  readonly expected: string;
  readonly location: string | undefined;

  constructor(field: string, expected: string, options: ConfigErrorOptions = {}) {
    const detail =
      options.detail ?? `expected ${expected}${options.got !== undefined ? `, got ${options.got}` : ''}`;
    super(`config: ${field}: ${detail}${options.location !== undefined ? ` (${options.location})` : ''}`);
    this.field = field;
    this.expected = expected;
    this.location = options.location;
  }
}

/** Formats a value for an error message (long strings cut, containers named). */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    const shown = v.length > 80 ? `${v.slice(0, 77)}...` : v;
    return JSON.stringify(shown);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

export function quoteList(values: readonly string[]): string {
  return values.join(', ');
}

/**
 * Raises errors for one field of one source. `locate` gives the YAML position of a field; sources
 * without positions (environment, command line) pass none.
 */
export class FieldErrors {
  constructor(private readonly locate: (field: string) => string | undefined = () => undefined) {}

  location(field: string): string | undefined {
    return this.locate(field);
  }

  fail(field: string, expected: string, got: unknown): never {
    throw new ConfigError(field, expected, { got: describe(got), location: this.locate(field) });
  }

  failDetail(field: string, expected: string, detail: string): never {
    throw new ConfigError(field, expected, { detail, location: this.locate(field) });
  }

  /** A required value is absent: "required[ when]: expected …". */
  missing(field: string, expected: string, when?: string): never {
    this.failDetail(field, expected, `required${when !== undefined ? ` ${when}` : ''}: expected ${expected}`);
  }
}
