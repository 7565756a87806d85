// rustfs-kms install-systemd: puts the systemd units, the sysusers.d/tmpfiles.d snippets and an
// example config in place on a host, or under a staging root (--prefix, like DESTDIR) for packaging
// and tests.
//
// Layout under the prefix (units and snippets in the "local vendor" directories systemd searches, so
// an upgrade can replace them while an operator's overrides in /etc win):
//   <lib-dir>/systemd/system/rustfs-kms.service, rustfs-kms.socket      (lib-dir: /usr/local/lib)
//   <lib-dir>/sysusers.d/rustfs-kms.conf
//   <lib-dir>/tmpfiles.d/rustfs-kms.conf
//   /etc/rustfs-kms/config.example.yaml   always the newest example
//   /etc/rustfs-kms/config.yaml           only when absent: never overwritten
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants as fsc, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';

export const SERVICE_CONFIG_PATH = '/etc/rustfs-kms/config.yaml';
/** npm's cache: npx installs there (~/.npm/_npx/<hash>/node_modules/…). */
const NPM_CACHE = /\/(_npx|_cacache)\/|\/\.npm\//;
const SHIPPED_EXEC_START = 'ExecStart=/usr/bin/rustfs-kmsd --config /etc/rustfs-kms/config.yaml';

export interface InstallOptions {
  /** Staging root; '/' installs on this host. */
  prefix: string;
  /** Where units and snippets go, inside the prefix (default /usr/local/lib). */
  libDir?: string;
  /** The daemon command for ExecStart= (absolute path); detected when absent. */
  daemon?: string;
  /** The package's root (holds systemd/). */
  packageRoot: string;
  /** Run systemd-sysusers, systemd-tmpfiles and systemctl daemon-reload (only with prefix '/'). */
  activate: boolean;
  env: NodeJS.ProcessEnv;
  /** The CLI script being run (process.argv[1]), to find the rustfs-kmsd installed beside it. */
  cliScript?: string;
}

export interface InstalledFile {
  path: string;
  action: 'written' | 'unchanged' | 'kept';
}

export interface InstallReport {
  prefix: string;
  execStart: string;
  files: InstalledFile[];
  warnings: string[];
  /** Commands run on the host (prefix '/'), with their outcome. */
  ran: Array<{ command: string; ok: boolean; output: string }>;
  nextSteps: string[];
}

export class InstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallError';
  }
}

export function installSystemd(options: InstallOptions): InstallReport {
  const prefix = resolve(options.prefix);
  const libDir = options.libDir ?? '/usr/local/lib';
  if (!isAbsolute(libDir)) throw new InstallError(`--lib-dir must be an absolute path, got "${libDir}"`);
  const source = join(options.packageRoot, 'systemd');
  const read = (name: string): string => {
    try {
      return readFileSync(join(source, name), 'utf8');
    } catch (err) {
      throw new InstallError(`cannot read ${join(source, name)}: ${(err as Error).message}`);
    }
  };
  const warnings: string[] = [];
  const daemonCommand = daemonExec(options, warnings);
  const execStart = `ExecStart=${daemonCommand} --config ${SERVICE_CONFIG_PATH}`;

  const service = read('rustfs-kms.service');
  if (!service.includes(SHIPPED_EXEC_START)) throw new InstallError(`${join(source, 'rustfs-kms.service')} has no "${SHIPPED_EXEC_START}" line to adapt`);
  const files: Array<{ path: string; text: string; keep?: boolean }> = [
    { path: join(libDir, 'systemd/system/rustfs-kms.service'), text: service.replace(SHIPPED_EXEC_START, execStart) },
    { path: join(libDir, 'systemd/system/rustfs-kms.socket'), text: read('rustfs-kms.socket') },
    { path: join(libDir, 'sysusers.d/rustfs-kms.conf'), text: read('rustfs-kms.sysusers.conf') },
    { path: join(libDir, 'tmpfiles.d/rustfs-kms.conf'), text: read('rustfs-kms.tmpfiles.conf') },
    { path: '/etc/rustfs-kms/config.example.yaml', text: read('config.example.yaml') },
    { path: SERVICE_CONFIG_PATH, text: read('config.example.yaml'), keep: true },
  ];
  const report: InstallReport = { prefix, execStart, files: [], warnings, ran: [], nextSteps: [] };
  for (const f of files) {
    const target = join(prefix, f.path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    if (existsSync(target)) {
      if (f.keep === true) {
        report.files.push({ path: target, action: 'kept' });
        continue;
      }
      if (readFileSync(target, 'utf8') === f.text) {
        report.files.push({ path: target, action: 'unchanged' });
        continue;
      }
    }
    const temp = `${target}.tmp-${process.pid}`;
    writeFileSync(temp, f.text, { mode: 0o644 });
    chmodSync(temp, 0o644); // whatever the umask
    renameSync(temp, target);
    report.files.push({ path: target, action: 'written' });
  }

  const unitDir = join(libDir, 'systemd/system');
  if (prefix === '/' && options.activate) {
    const run = (command: string, args: string[]) => {
      const r = spawnSync(command, args, { encoding: 'utf8' });
      const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? r.error.message : ''}`.trim();
      report.ran.push({ command: [command, ...args].join(' '), ok: r.status === 0, output });
    };
    run('systemd-sysusers', [join(libDir, 'sysusers.d/rustfs-kms.conf')]);
    run('systemd-tmpfiles', ['--create', join(libDir, 'tmpfiles.d/rustfs-kms.conf')]);
    if (existsSync('/run/systemd/system')) run('systemctl', ['daemon-reload']);
    else warnings.push('systemd is not running on this host (no /run/systemd/system); skipped "systemctl daemon-reload"');
  }
  report.nextSteps = [
    ...(prefix === '/' && options.activate ? [] : [
      `systemd-sysusers ${join(libDir, 'sysusers.d/rustfs-kms.conf')}`,
      `systemd-tmpfiles --create ${join(libDir, 'tmpfiles.d/rustfs-kms.conf')}`,
      'systemctl daemon-reload',
    ]),
    `edit ${SERVICE_CONFIG_PATH} (units in ${unitDir})`,
    'rustfs-kms init --state-dir /var/lib/rustfs-kms && chown rustfs-kms:rustfs-kms /var/lib/rustfs-kms/root.key',
    'systemctl enable --now rustfs-kms.socket      # the daemon starts on the first connection',
    'usermod -aG rustfs-kms <user of each storage process>',
  ];
  return report;
}

/** ExecStart='s command: --daemon, else the rustfs-kmsd beside this CLI or on PATH, else node + main.js. */
function daemonExec(options: InstallOptions, warnings: string[]): string {
  const ourMain = join(options.packageRoot, 'dist', 'src', 'daemon', 'main.js');
  let command: string;
  if (options.daemon !== undefined) {
    if (!isAbsolute(options.daemon)) throw new InstallError(`--daemon must be an absolute path, got "${options.daemon}"`);
    command = unitQuote(options.daemon);
    if (options.prefix === '/' && !isExecutable(options.daemon)) warnings.push(`${options.daemon} is not an executable file on this host`);
  } else {
    const candidates = [
      ...(options.cliScript !== undefined ? [join(dirname(options.cliScript), 'rustfs-kmsd')] : []),
      ...(options.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d)).map((d) => join(d, 'rustfs-kmsd')),
    ];
    const found = candidates.find((c) => isExecutable(c) && sameFile(c, ourMain));
    command = found !== undefined ? unitQuote(found) : `${unitQuote(process.execPath)} ${unitQuote(ourMain)}`;
    const used = found ?? ourMain;
    // npx runs packages from its cache, which npm clears and rebuilds: a unit must never point there.
    const cached = [realpathOr(used), realpathOr(options.packageRoot)].find((p) => NPM_CACHE.test(p));
    if (cached !== undefined) {
      throw new InstallError(
        `the service would run ${cached}, inside npm's cache (npx), which npm may rebuild or delete at any time; ` +
          'install the package instead ("npm install -g rustfs-kms", then "rustfs-kms install-systemd"), or pass --daemon /absolute/path/to/rustfs-kmsd',
      );
    }
    if (/^\/(home|root|run\/user)\//.test(realpathOr(used)) || /^\/(home|root|run\/user)\//.test(realpathOr(process.execPath))) {
      warnings.push(
        `${realpathOr(used)} (or node at ${process.execPath}) is under /home, /root or /run/user, which ProtectHome=yes hides ` +
          'from the service: install the package globally (npm install -g) or pass --daemon',
      );
    }
  }
  return command;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function sameFile(a: string, b: string): boolean {
  return realpathOr(a) === realpathOr(b);
}

/** One word of a unit file command line: quoted when needed, % and $ escaped (systemd.service(5)). */
export function unitQuote(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_./+:@=,-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
