// argv → one command of the table (src/cli/commands.ts) and its checked options, with node:util
// parseArgs. Usage mistakes throw UsageError naming the problem and the command it concerns.
import { parseArgs } from 'node:util';
import { COMMANDS, GLOBAL_OPTIONS, findCommand, subWords, topWords, type CommandSpec, type OptionSpec } from './commands.js';

export class UsageError extends Error {
  /** The command words it concerns, for the pointer to `--help`. */
  readonly words: readonly string[];

  constructor(message: string, words: readonly string[] = []) {
    super(message);
    this.name = 'UsageError';
    this.words = words;
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export type Parsed =
  | { kind: 'help'; words: string[] }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandSpec; values: Values; args: string[] };

type ParseArgsOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

function toParseArgs(specs: readonly OptionSpec[]): ParseArgsOptions {
  const out: ParseArgsOptions = {};
  for (const s of specs) out[s.name] = { type: s.type, ...(s.multiple === true ? { multiple: true } : {}), ...(s.short !== undefined ? { short: s.short } : {}) };
  return out;
}

// Every option of every command, so the first pass knows which flags take a value.
const ALL_OPTIONS = toParseArgs([...GLOBAL_OPTIONS, ...COMMANDS.flatMap((c) => c.options)]);

export function parseCommandLine(argv: string[]): Parsed {
  const first = parseArgs({ args: argv, options: ALL_OPTIONS, allowPositionals: true, strict: false });
  const words = first.positionals;
  const help = first.values.help === true;
  if (words[0] === 'help') return { kind: 'help', words: words.slice(1) };
  if (words.length === 0) {
    if (help) return { kind: 'help', words: [] };
    if (first.values.version === true) return { kind: 'version' };
    throw new UsageError('no command given');
  }
  const top = words[0] as string;
  if (!topWords().includes(top)) throw new UsageError(`unknown command "${top}"`);
  const subs = subWords(top);
  let path = [top];
  if (subs.length > 0) {
    const sub = words[1];
    if (sub === undefined) {
      if (help) return { kind: 'help', words: [top] };
      throw new UsageError(`"${top}" needs a subcommand: ${subs.join(', ')}`, [top]);
    }
    if (!subs.includes(sub)) throw new UsageError(`unknown ${top} command "${sub}" (${subs.join(', ')})`, [top]);
    path = [top, sub];
  }
  const command = findCommand(path) as CommandSpec;
  if (help) return { kind: 'help', words: path };
  return { kind: 'run', command, ...checkCommand(command, argv) };
}

/** The second pass: only the command's own and the global options; positionals counted. */
function checkCommand(command: CommandSpec, argv: string[]): { values: Values; args: string[] } {
  const name = command.path.join(' ');
  const specs = [...GLOBAL_OPTIONS, ...command.options];
  const known = new Map(specs.map((s) => [s.name, s]));
  const parsed = parseArgs({ args: argv, options: toParseArgs(specs), allowPositionals: true, strict: false, tokens: true });
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const spec = known.get(t.name);
    if (spec === undefined) throw new UsageError(`${name} does not take ${t.rawName}`, command.path);
    if (spec.type === 'string' && t.value === undefined) throw new UsageError(`${t.rawName} needs a value (${t.rawName} ${spec.value ?? 'VALUE'})`, command.path);
    if (spec.type === 'boolean' && t.inlineValue === true) throw new UsageError(`${t.rawName} takes no value`, command.path);
    if (spec.multiple !== true && parsed.tokens.filter((o) => o.kind === 'option' && o.name === t.name).length > 1) {
      throw new UsageError(`${t.rawName} given more than once`, command.path);
    }
  }
  const args = parsed.positionals.slice(command.path.length);
  const pos = command.positionals;
  const variadic = pos.find((p) => p.variadic === true);
  pos.forEach((p, i) => {
    const v = args[i];
    if (v === undefined) {
      if (p.required) throw new UsageError(`${name} needs ${p.name}${p.variadic === true ? ' (one or more)' : ''}`, command.path);
    } else if (p.choices !== undefined && !p.choices.includes(v)) {
      throw new UsageError(`${name}: ${p.name} must be one of ${p.choices.join(', ')}, got "${v}"`, command.path);
    }
  });
  if (variadic === undefined && args.length > pos.length) {
    const extra = args.slice(pos.length).map((a) => `"${a}"`).join(' ');
    const takes = pos.length === 0 ? 'takes no arguments' : `takes ${pos.map((p) => p.name).join(' ')}`;
    throw new UsageError(`${name} ${takes}; unexpected ${extra}`, command.path);
  }
  return { values: parsed.values as Values, args };
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function bool(values: Values, name: string): boolean {
  return values[name] === true;
}

export function list(values: Values, name: string): string[] | undefined {
  const v = values[name];
  return Array.isArray(v) ? v : undefined;
}
