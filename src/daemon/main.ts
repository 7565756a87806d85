#!/usr/bin/env node
// rustfs-kmsd [--config FILE] [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, redactedConfig, type DaemonConfig } from './config.js';
import { createLogger } from './logger.js';
import { startDaemon, type RunningDaemon } from './daemon.js';
import { notify } from './notify.js';
import { VERSION } from '../package-info.js';

const USAGE = `usage: rustfs-kmsd [--config FILE] [--state-dir DIR] [--socket PATH] [--dev] [--allow-unlocked-memory]

  --config FILE             YAML config (default /etc/rustfs-kms/config.yaml, or $RUSTFS_KMS_CONFIG)
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

/** systemd socket activation: fd 3 when LISTEN_PID is us and LISTEN_FDS ≥ 1. */
function activatedFd(): number | undefined {
  if (process.env.LISTEN_PID !== String(process.pid)) return undefined;
  const count = Number(process.env.LISTEN_FDS);
  return Number.isInteger(count) && count >= 1 ? 3 : undefined;
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
  const load = (): DaemonConfig => loadConfig({ ...(flags.config !== undefined ? { configPath: flags.config } : {}), env: process.env, cli });
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
  const listenFd = activatedFd();
  notify('STATUS=starting');
  let daemon: RunningDaemon;
  try {
    daemon = await startDaemon(config, { logger, ...(listenFd !== undefined ? { listenFd } : {}) });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'start-up refused');
    process.stderr.write(`rustfs-kmsd: ${(err as Error).message}\n`);
    process.exit(1);
  }
  logger.info({ config: redactedConfig(config), version: VERSION, keys: daemon.service.keyCount }, 'rustfs-kmsd serving');
  if (config.dev) {
    process.stderr.write(
      `rustfs-kmsd ${VERSION} (dev): serving on ${config.socket.path}\n` +
        `  state directory ${config.stateDir}, root key ${config.root.local.keyFile}\n` +
        `  try: RUSTFS_KMS_SOCKET=${config.socket.path} npx rustfs-kms key create my-key\n`,
    );
  }
  notify(`READY=1\nSTATUS=serving ${daemon.service.keyCount} keys on ${listenFd !== undefined ? 'an activated socket' : config.socket.path}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    notify(`STOPPING=1\nSTATUS=draining after ${signal}`);
    logger.info({ signal }, 'stopping: draining requests in flight');
    daemon.stop().then(
      () => {
        logger.info({}, 'stopped');
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
  process.on('SIGHUP', () => {
    try {
      daemon.reload(load());
      notify('STATUS=reloaded');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'reload refused; keeping the running policy');
    }
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`rustfs-kmsd: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
