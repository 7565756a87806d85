// Help text, the README's CLI table and shell completion, all rendered from the command table.
import { COMMANDS, GLOBAL_OPTIONS, findCommand, subWords, synopsis, topWords, type CommandSpec, type OptionSpec } from './commands.js';

const NAME = 'rustfs-kms';
const GLOBAL_SYNOPSIS = `${NAME} [--socket PATH] [--json] [--timeout-ms N] <command> [arguments]`;

const EXIT_STATUS = 'Exit status: 0 ok, 1 refused or failed (the error code is printed), 2 usage.';

function optionLines(specs: readonly OptionSpec[]): string[] {
  const left = specs.map((o) => `${o.short !== undefined ? `-${o.short}, ` : ''}--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}${o.multiple === true ? '...' : ''}`);
  const width = Math.max(...left.map((l) => l.length));
  return specs.map((o, i) => `  ${(left[i] as string).padEnd(width)}  ${o.help}`);
}

function commandList(commands: readonly CommandSpec[]): string[] {
  const left = commands.map((c) => [...c.path, ...c.positionals.map((p) => (p.required ? p.name : `[${p.name}]`) + (p.variadic === true ? '...' : ''))].join(' '));
  const width = Math.max(...left.map((l) => l.length));
  return commands.map((c, i) => `  ${(left[i] as string).padEnd(width)}  ${c.summary}`);
}

export function globalHelp(): string {
  return [
    `usage: ${GLOBAL_SYNOPSIS}`,
    '',
    'commands:',
    ...commandList(COMMANDS),
    '',
    'global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    `"${NAME} <command> --help" shows a command's options.`,
    EXIT_STATUS,
    '',
  ].join('\n');
}

export function commandHelp(c: CommandSpec): string {
  const globals = c.daemon ? GLOBAL_OPTIONS : GLOBAL_OPTIONS.filter((o) => o.name !== 'socket' && o.name !== 'timeout-ms');
  return [
    `usage: ${NAME} ${synopsis(c)}`,
    '',
    c.summary,
    ...(c.details ?? []),
    ...(c.options.length > 0 ? ['', 'options:', ...optionLines(c.options)] : []),
    '',
    'global options:',
    ...optionLines(globals),
    '',
  ].join('\n');
}

/** Help for the words after `help` (or before `--help`); undefined when they name no command. */
export function helpFor(words: readonly string[]): string | undefined {
  if (words.length === 0) return globalHelp();
  const command = findCommand(words);
  if (command !== undefined) return commandHelp(command);
  if (words.length === 1 && subWords(words[0] as string).length > 0) {
    const group = COMMANDS.filter((c) => c.path[0] === words[0]);
    return [`usage: ${NAME} ${words[0]} <${subWords(words[0] as string).join('|')}> ...`, '', ...commandList(group), '',
      `"${NAME} ${words[0]} <command> --help" shows a command's options.`, ''].join('\n');
  }
  return undefined;
}

/** Two lines for a usage mistake: what is wrong, and where the help is. */
export function usageErrorText(message: string, words: readonly string[]): string {
  const target = words.length > 0 ? `${NAME} ${words.join(' ')} --help` : `${NAME} --help`;
  return `${NAME}: ${message}\nsee "${target}"\n`;
}

// ---- README ---------------------------------------------------------------------------------------

export const README_BEGIN = '<!-- cli-table: generated from src/cli/commands.ts by `npm run docs:cli`; do not edit -->';
export const README_END = '<!-- /cli-table -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** The README's CLI table (between README_BEGIN and README_END). */
export function readmeTable(): string {
  const rows = COMMANDS.filter((c) => c.path[0] !== 'help').map((c) => {
    const words = [...c.path, ...c.positionals.map((p) => {
      const n = p.choices !== undefined ? p.choices.join('\\|') : p.name;
      return (p.required ? n : `[${n}]`) + (p.variadic === true ? '...' : '');
    })].join(' ');
    const opts = c.options.map((o) => `\`--${o.name}${o.value !== undefined ? ` ${cell(o.value)}` : ''}\`${o.multiple === true ? '…' : ''}`).join(' ');
    return `| \`${words}\` | ${opts} | ${cell(c.summary)} |`;
  });
  const globals = GLOBAL_OPTIONS.map((o) => `\`--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}\``).join(' ');
  return [
    `\`${GLOBAL_SYNOPSIS}\` — global options ${globals}`,
    '',
    '| command | options | what |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
}

/** `text` with the block between the markers replaced by the current table. */
export function withReadmeTable(text: string): string {
  const start = text.indexOf(README_BEGIN);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`README has no "${README_BEGIN}" … "${README_END}" block`);
  return `${text.slice(0, start + README_BEGIN.length)}\n${readmeTable()}\n${text.slice(end)}`;
}

// ---- shell completion -------------------------------------------------------------------------------

const PATH_VALUES = new Set(['FILE', 'DIR', 'PATH']);

export function bashCompletion(): string {
  const all = [...GLOBAL_OPTIONS, ...COMMANDS.flatMap((c) => c.options)];
  const valued = [...new Set(all.filter((o) => o.type === 'string').map((o) => `--${o.name}`))];
  const pathValued = [...new Set(all.filter((o) => PATH_VALUES.has(o.value ?? '')).map((o) => `--${o.name}`))];
  const globals = GLOBAL_OPTIONS.map((o) => `--${o.name}`).join(' ');
  const cases: string[] = [`    '') words="${topWords().join(' ')} ${globals}" ;;`];
  for (const top of topWords()) {
    const subs = subWords(top);
    if (subs.length > 0) cases.push(`    '${top}') words="${subs.join(' ')}" ;;`);
  }
  for (const c of COMMANDS) {
    const key = c.path.join(' ');
    const opts = c.options.map((o) => `--${o.name}`).join(' ');
    const choices = c.positionals.flatMap((p) => p.choices ?? []).join(' ');
    const files = c.positionals.some((p) => p.name === 'FILE') ? ' files=1;' : '';
    cases.push(`    '${key}'|'${key} '*) words="${[choices, opts, globals].filter((s) => s !== '').join(' ')}";${files} ;;`);
  }
  return `# bash completion for ${NAME} (generated from its command table): source <(${NAME} completion bash)
_rustfs_kms() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd="" words="" files="" i w
  case "$prev" in
    ${pathValued.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    ${valued.join('|')}) COMPREPLY=(); return ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case "\${COMP_WORDS[i-1]}" in ${valued.join('|')}) continue ;; esac
    cmd="\${cmd:+$cmd }$w"
  done
  case "$cmd" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  if [[ -n "$files" && "$cur" != -* ]]; then COMPREPLY+=($(compgen -f -- "$cur")); fi
}
complete -F _rustfs_kms ${NAME}
`;
}

export function zshCompletion(): string {
  return `# zsh completion for ${NAME}: source <(${NAME} completion zsh) (uses zsh's bash completion support)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion()}`;
}
