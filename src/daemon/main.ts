#!/usr/bin/env node
// rustfs-kmsd [--config FILE] [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]
//             --check-config FILE [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]
import './heap.js'; // before anything allocates
import { parseArgs } from 'node:util';
import { ConfigError, checkConfigFile, loadConfig, redactedConfig, type DaemonConfig } from '../config/index.js';
import { createLogger } from './logger.js';
import { startDaemon, type RunningDaemon } from './daemon.js';
import { notify } from './notify.js';
import {
  ActivationError, Supervisor, activatedSocketGid, reloadingMessage, socketActivation, statusText, watchdogFromEnv,
} from './systemd.js';
import { VERSION } from '../package-info.js';

const USAGE = `usage: rustfs-kmsd [--config FILE] [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]
       rustfs-kmsd --check-config FILE [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]

  --config FILE             YAML config (default /etc/rustfs-kms/config.yaml, or $RUSTFS_KMS_CONFIG)
  --check-config FILE       validate FILE with the environment and flags as the daemon would, print
                            "FILE: ok" and the effective config (secrets redacted), start nothing;
                            exit 0 if valid, 1 if not
  --state-dir DIR           where key records and the lock live
  --socket PATH             Unix socket to listen on
  --dev                     development defaults: state and socket under ./.kms, root key created on first start
  --allow-unlocked-memory   run even when key memory cannot be mlock()ed (not for production)
`;

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'check-config': { type: 'string' },
        'state-dir': { type: 'string' },
        socket: { type: 'string' },
        dev: { type: 'boolean' },
        'allow-unlocked-memory': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`rustfs-kmsd: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const flags = parseCommandLine(process.argv.slice(2));
  if (flags.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  if (flags.version === true) {
    process.stdout.write(`rustfs-kmsd ${VERSION}\n`);
    return;
  }
  const cli = {
    ...(flags['state-dir'] !== undefined ? { stateDir: flags['state-dir'] } : {}),
    ...(flags.socket !== undefined ? { socket: flags.socket } : {}),
    ...(flags.dev === true ? { dev: true } : {}),
    ...(flags['allow-unlocked-memory'] === true ? { allowUnlockedMemory: true } : {}),
  };
  const checkFile = flags['check-config'];
  if (checkFile !== undefined) {
    if (flags.config !== undefined || checkFile === '') {
      process.stderr.write(`rustfs-kmsd: --check-config takes the file to check; do not combine it with --config\n${USAGE}`);
      process.exit(2);
    }
    try {
      process.stdout.write(checkConfigFile({ file: checkFile, env: process.env, cli }));
      process.exit(0);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`rustfs-kmsd: ${err.message}\n`);
      process.exit(1);
    }
  }
  const load = (reload = false): DaemonConfig =>
    loadConfig({ ...(flags.config !== undefined ? { configPath: flags.config } : {}), env: process.env, cli: reload ? { ...cli, reload } : cli });
  let config: DaemonConfig;
  try {
    config = load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`rustfs-kmsd: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  // ---- systemd: socket activation (LISTEN_FDNAMES) and watchdog settings, read once and unset ----
  let activation;
  try {
    activation = socketActivation();
  } catch (err) {
    if (!(err instanceof ActivationError)) throw err;
    logger.fatal({ err: err.message }, 'start-up refused');
    process.stderr.write(`rustfs-kmsd: socket activation: ${err.message}\n`);
    notify(`STATUS=${statusText(`start-up refused: ${err.message}`)}`);
    process.exit(1);
  }
  if (activation.ignored !== undefined) logger.warn({}, activation.ignored);
  const listenFd = activation.socket?.fd;
  const listenGid = listenFd !== undefined ? activatedSocketGid(config.socket.path, config.socket.group) : undefined;
  const watchdogEnv = watchdogFromEnv();
  if (watchdogEnv.ignored !== undefined) logger.warn({}, watchdogEnv.ignored);
  const where = activation.socket !== undefined
    ? `an activated socket (fd ${activation.socket.fd}${activation.socket.name !== undefined ? ` "${activation.socket.name}"` : ''})`
    : config.socket.path;
  notify(`STATUS=starting: opening the ${config.root.type} root and the ${config.keystore.type} keystore`);
  // ---- end systemd ----
  let daemon: RunningDaemon;
  try {
    daemon = await startDaemon(config, {
      logger,
      ...(listenFd !== undefined ? { listenFd } : {}),
      ...(listenGid !== undefined ? { listenGid } : {}),
    });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'start-up refused');
    process.stderr.write(`rustfs-kmsd: ${(err as Error).message}\n`);
    notify(`STATUS=${statusText(`start-up refused: ${(err as Error).message}`)}`);
    process.exit(1);
  }
  // ---- systemd: a status line and watchdog pings from one supervised timer ----
  const serving = (): string => {
    const server = daemon.server;
    return `serving ${daemon.service.keyCount} keys on ${where}; ${server.connectionCount} connections, ${server.inflight} requests in flight`;
  };
  const supervisor = new Supervisor({
    ...(watchdogEnv.watchdog !== undefined ? { watchdogUsec: watchdogEnv.watchdog.usec } : {}),
    probe: async () => {
      const health = await daemon.service.health();
      if (health.healthy) return { ok: true, status: serving() };
      // A local root that stops answering will not heal itself: withhold the ping so systemd
      // restarts us. A remote root or keystore (Vault, HSM) that is down is no reason to restart:
      // cached keys keep serving through the offline window, so say so in STATUS and keep pinging.
      const remote = daemon.service.root.type !== 'local' || daemon.service.keystore.type !== 'file';
      return { ok: remote, status: `degraded: ${health.detail ?? 'unhealthy'}; ${serving()}` };
    },
    send: (message) => notify(message),
    onProblem: (problem) => logger.warn({ watchdog: supervisor.watchdog }, problem),
  });
  // ---- end systemd ----

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    supervisor.stop();
    const inflight = daemon.server.inflight;
    notify(`STOPPING=1\nSTATUS=${statusText(`draining ${inflight} requests in flight on ${daemon.server.connectionCount} connections after ${signal} (up to ${config.limits.drainTimeoutS} s)`)}`);
    logger.info({ signal, inflight }, 'stopping: draining requests in flight');
    // systemd: a ref'd deadline below TimeoutStopSec. It keeps the event loop alive until stop()
    // settles (an empty loop would exit 0 before the audit flush and the wipe) and fails loudly
    // rather than hang if it never does.
    setTimeout(() => {
      logger.error({ signal }, 'shutdown did not finish in time; exiting without a clean stop');
      process.exit(1);
    }, (config.limits.drainTimeoutS + 15) * 1000);
    daemon.stop().then(
      () => {
        logger.info({}, 'stopped');
        notify('STATUS=stopped: requests answered, audit log flushed, key slots wiped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  /** One reload path for SIGHUP and the admin API's reconfigure: returns the status, throws why not. */
  const reload = (): string => {
    if (stopping) throw new Error('the daemon is stopping');
    // sd_notify reload protocol: RELOADING=1 (+ MONOTONIC_USEC) first, READY=1 when done, even
    // when the new configuration is refused, so the unit leaves the "reloading" state either way.
    notify(reloadingMessage('reloading policy and log level'));
    try {
      daemon.reload(load(true));
      const status = `reloaded policy and log level; ${serving()}`;
      notify(`READY=1\nSTATUS=${statusText(status)}`);
      supervisor.noteStatus(status);
      return status;
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'reload refused; keeping the running policy');
      const status = `reload refused (${(err as Error).message}); still serving with the previous policy`;
      notify(`READY=1\nSTATUS=${statusText(status)}`);
      supervisor.noteStatus(status);
      throw new Error(status);
    }
  };
  process.on('SIGHUP', () => {
    if (stopping) return;
    try {
      reload();
    } catch {
      // logged and announced by reload()
    }
  });
  daemon.onReloadRequest(reload);

  // Announce only once the signal handlers are in place: a SIGHUP (systemctl reload) or SIGTERM sent
  // the moment READY=1 arrives must find them, not the default action (which kills the process).
  logger.info({ config: redactedConfig(config), version: VERSION, keys: daemon.service.keyCount }, 'rustfs-kmsd serving');
  if (config.dev) {
    process.stderr.write(
      `rustfs-kmsd ${VERSION} (dev): serving on ${config.socket.path}\n` +
        `  state directory ${config.stateDir}, root ${config.root.type === 'local' ? `key ${config.root.local.keyFile}` : config.root.type}\n` +
        `  try: RUSTFS_KMS_SOCKET=${config.socket.path} npx rustfs-kms key create my-key\n`,
    );
  }
  // ---- systemd: READY=1 ----
  const readyStatus = serving();
  notify(`READY=1\nSTATUS=${statusText(readyStatus)}`);
  supervisor.noteStatus(readyStatus);
  // Nobody to tell without a NOTIFY_SOCKET (not under systemd): no probes then.
  if (process.env.NOTIFY_SOCKET !== undefined && process.env.NOTIFY_SOCKET !== '') supervisor.start();
  if (supervisor.watchdog) logger.info({ interval_ms: supervisor.intervalMs }, 'systemd watchdog: pinging every half of WatchdogSec while healthy');
  if (listenFd !== undefined && listenGid === undefined && config.policy === undefined) {
    logger.warn({ socket_group: config.socket.group ?? null }, 'socket-activated, but the socket group is unknown: the built-in policy grants no group the data operations (set socket.group to the unit\'s SocketGroup=)');
  }
  // ---- end systemd ----
}

main().catch((err: unknown) => {
  process.stderr.write(`rustfs-kmsd: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
