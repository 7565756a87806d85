// The CLI's command table: the one source for argument parsing, `--help`, shell completion and the
// README's CLI block (test/cli/help.test.ts checks the README against it).

export interface OptionSpec {
  name: string;
  type: 'string' | 'boolean';
  /** The value's placeholder in help (string options). */
  value?: string;
  multiple?: boolean;
  short?: string;
  help: string;
}

export interface PositionalSpec {
  name: string;
  required: boolean;
  /** Takes every remaining argument (at least one when required). */
  variadic?: boolean;
  /** The only values allowed (shown in help and completion). */
  choices?: readonly string[];
}

export interface CommandSpec {
  /** The words that select it: ['key', 'create']. */
  path: readonly string[];
  positionals: readonly PositionalSpec[];
  options: readonly OptionSpec[];
  /** One line for the summary and the README. */
  summary: string;
  /** More lines for `<command> --help`. */
  details?: readonly string[];
  /** Talks to the daemon over the socket (so --socket and --timeout-ms apply). */
  daemon: boolean;
}

const opt = (name: string, help: string, value?: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({
  name, type: value === undefined ? 'boolean' : 'string', help, ...(value !== undefined ? { value } : {}), ...extra,
});
const KEY: PositionalSpec = { name: 'KEY', required: true };
const CONTEXT = opt('context', 'encryption context pair; repeat for more (the same pairs must be given to decrypt)', 'K=V', { multiple: true });
const STATE_DIR = opt('state-dir', 'the state directory (default: found like the socket: $RUSTFS_KMS_STATE_DIR, the config\'s, /var/lib/rustfs-kms, or ./.kms when only it exists)', 'DIR');
const CONFIG = opt('config', 'read the daemon\'s config file (default $RUSTFS_KMS_CONFIG, then /etc/rustfs-kms/config.yaml)', 'FILE');

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  opt('socket', 'the daemon\'s socket (default $RUSTFS_KMS_SOCKET, then /run/rustfs-kms/kms.sock, or ./.kms/kms.sock when only it exists)', 'PATH'),
  opt('json', 'machine-readable output (one JSON document on stdout)'),
  opt('timeout-ms', 'per-call deadline for daemon commands (default 30000)', 'N'),
  opt('help', 'show help for the command', undefined, { short: 'h' }),
  opt('version', 'print the version'),
];

const keyCommand = (sub: string, summary: string, options: OptionSpec[] = []): CommandSpec => ({
  path: ['key', sub], positionals: [KEY], options, summary, daemon: true,
});

export const COMMANDS: readonly CommandSpec[] = [
  {
    path: ['key', 'create'], positionals: [KEY], daemon: true, summary: 'create a master key',
    options: [
      opt('description', 'free text stored with the key', 'TEXT'),
      opt('tag', 'a tag; repeat for more', 'K=V', { multiple: true }),
      opt('rotation-period-days', 'rotate automatically every N days (1-3650)', 'N'),
    ],
  },
  keyCommand('status', 'show a key\'s state, versions and metadata'),
  {
    path: ['key', 'list'], positionals: [], daemon: true, summary: 'list keys',
    options: [opt('prefix', 'only keys whose id starts with P', 'P'), opt('limit', 'at most N keys per page', 'N'), opt('marker', 'start after key M (from a previous page)', 'M')],
  },
  keyCommand('enable', 'enable a disabled key'),
  keyCommand('disable', 'disable a key (nothing seals or opens under it until enabled)'),
  keyCommand('rotate', 'add a new version; older versions keep decrypting'),
  keyCommand('delete', 'schedule deletion (PendingDeletion; purged after the window)', [
    opt('pending-days', 'the deletion window, 7-30 days (default 30)', 'N'),
  ]),
  keyCommand('cancel-delete', 'cancel a scheduled deletion (the key comes back Disabled)'),
  {
    path: ['encrypt'], positionals: [{ name: 'KEY', required: false }], daemon: true, summary: 'stdin → envelope on stdout',
    options: [
      opt('key', 'the master key (or give KEY as the argument)', 'KEY'),
      CONTEXT,
      opt('base64', 'write the envelope as base64 text instead of raw bytes'),
    ],
  },
  {
    path: ['decrypt'], positionals: [], daemon: true, summary: 'envelope on stdin → plaintext on stdout',
    options: [CONTEXT, opt('base64', 'the envelope on stdin is base64 text (as datakey and encrypt --base64 write it)')],
    details: ['Raw envelopes start with byte 0x01; base64 input is recognised and refused without --base64.'],
  },
  {
    path: ['datakey'], positionals: [KEY], daemon: true, summary: 'a new data key: plaintext (hex) and sealed copy',
    options: [
      CONTEXT,
      opt('bytes', 'data key length, 1-64 (default 32)', 'N'),
      opt('ciphertext-out', 'write the sealed data key to FILE (raw bytes, or base64 with --base64) instead of printing it', 'FILE'),
      opt('base64', 'with --ciphertext-out: write base64 text instead of raw bytes'),
      opt('without-plaintext', 'return only the sealed copy'),
    ],
    details: ['Decrypt the sealed copy with "rustfs-kms decrypt [--context K=V]... < FILE" (add --base64 for base64).'],
  },
  { path: ['status'], positionals: [], options: [], daemon: true, summary: 'root, keystore, key count, limits, audit head' },
  {
    path: ['health'], positionals: [], daemon: true, summary: 'healthy or not (exit status 1 when not)',
    options: [opt('wait', 'while nothing listens on the socket yet, keep trying for up to N seconds (for scripts that just started the daemon)', 'N')],
  },
  {
    path: ['audit', 'verify'], positionals: [{ name: 'FILE', required: true, variadic: true }], daemon: false,
    summary: 'check the audit log\'s hash chain (files oldest first)',
    options: [
      opt('head', 'the head to end at, as printed by "rustfs-kms status"', 'SEQ:HASH'),
      opt('from', 'the first line\'s seq (and prev hash) when older files are gone', 'SEQ[:PREV]'),
    ],
  },
  {
    path: ['init'], positionals: [], daemon: false,
    summary: 'create what the configuration needs: directories, root key (local or PKCS#11), Transit key check',
    options: [
      CONFIG,
      opt('dev', 'development defaults, as rustfs-kmsd --dev (state, socket and audit log in ./.kms)'),
      opt('state-dir', 'the state directory (overrides the config)', 'DIR'),
      opt('key-file', 'the local root key file (default <state_dir>/root.key)', 'FILE'),
      opt('create-group', 'create the socket group (groupadd --system) when it does not exist'),
    ],
    details: [
      'Creates, when missing: the state directory (0700), the audit log\'s directory (0700), the socket\'s',
      'directory (0755); the local root key (0600), or the PKCS#11 root key (wrap mode); for vault-transit',
      'it checks that the Transit key exists and wraps and unwraps (creating it when the token may).',
      'It never overwrites a root key. What it may not do (a missing group without --create-group, a',
      'Transit key the token may not create) is printed as the exact command; --json says ready: false.',
    ],
  },
  {
    path: ['backup'], positionals: [{ name: 'FILE', required: true }], daemon: false,
    summary: 'wrapped key records → FILE (- for stdout); safe while the daemon runs',
    options: [STATE_DIR, CONFIG, opt('force', 'replace an existing FILE')],
  },
  {
    path: ['restore'], positionals: [{ name: 'FILE', required: true }], daemon: false,
    summary: 'import records from FILE (- for stdin); newer ones on disk are kept; refuses while a daemon runs',
    options: [STATE_DIR, CONFIG, opt('key-file', 'the root key file to check the backup against (default <state_dir>/root.key)', 'FILE'), opt('dry-run', 'only show what would be done')],
  },
  {
    path: ['install-systemd'], positionals: [], daemon: false,
    summary: 'install units, sysusers/tmpfiles snippets and an example config',
    options: [
      opt('prefix', 'stage under DIR and run nothing (packaging)', 'DIR'),
      opt('lib-dir', 'where units and snippets go (default /usr/local/lib)', 'DIR'),
      opt('daemon', 'the ExecStart= binary (absolute path)', 'PATH'),
      opt('no-reload', 'do not run systemd-sysusers, systemd-tmpfiles, systemctl daemon-reload'),
    ],
  },
  {
    path: ['completion'], positionals: [{ name: 'SHELL', required: true, choices: ['bash', 'zsh'] }], options: [], daemon: false,
    summary: 'print a shell completion script',
    details: ['bash: source <(rustfs-kms completion bash)    zsh: source <(rustfs-kms completion zsh)'],
  },
  { path: ['help'], positionals: [{ name: 'COMMAND', required: false, variadic: true }], options: [], daemon: false, summary: 'help for a command' },
];

/** The words that start a command (key, audit, encrypt, …), in table order. */
export function topWords(): string[] {
  return [...new Set(COMMANDS.map((c) => c.path[0] as string))];
}

/** Subcommands of a group word (key → create, status, …); empty for a plain command. */
export function subWords(top: string): string[] {
  return COMMANDS.filter((c) => c.path[0] === top && c.path.length > 1).map((c) => c.path[1] as string);
}

export function findCommand(words: readonly string[]): CommandSpec | undefined {
  return COMMANDS.find((c) => c.path.length === words.length && c.path.every((w, i) => w === words[i]));
}

/** `key create KEY [--description TEXT] [--tag K=V]...` */
export function synopsis(c: CommandSpec): string {
  const pos = c.positionals.map((p) => {
    const name = p.choices !== undefined ? p.choices.join('|') : p.name;
    const word = p.variadic === true ? `${name}...` : name;
    return p.required ? word : `[${word}]`;
  });
  const opts = c.options.map((o) => `[--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}]${o.multiple === true ? '...' : ''}`);
  return [...c.path, ...pos, ...opts].join(' ');
}
