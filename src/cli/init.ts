// rustfs-kms init: creates what the daemon's configuration needs before its first production start
// (the directories, the socket group when asked, the root key), never overwriting a root key; what
// it cannot do itself is printed as the exact command.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { groupId } from '../access/identity.js';
import { loadConfig, type DaemonConfig } from '../config/index.js';
import { KmsError } from '../errors.js';
import { createKeyFile } from '../roots/local.js';
import { initPkcs11Root } from '../roots/pkcs11.js';
import type { Out } from './daemon-commands.js';
import { CliError } from './locate.js';
import { bool, str, type Values } from './parse.js';
import { initGcpKms } from './init-gcp.js';
import { initVaultTransit } from './init-vault.js';
import { initAzureKeyVault } from './init-azure.js';
import { initAwsKms } from './init-aws.js';

export interface InitStep {
  what: string;
  path?: string;
  action: 'created' | 'exists' | 'checked' | 'todo';
  detail?: string;
  /** The command that does it, for a `todo`. */
  command?: string;
}

function configFor(values: Values): DaemonConfig {
  const env = process.env;
  const configFlag = str(values, 'config');
  const fromEnv = env.RUSTFS_KMS_CONFIG !== undefined && env.RUSTFS_KMS_CONFIG !== '' ? env.RUSTFS_KMS_CONFIG : undefined;
  const stateDir = str(values, 'state-dir');
  return loadConfig({
    ...(configFlag ?? fromEnv) !== undefined ? { configPath: resolve(configFlag ?? (fromEnv as string)) } : {},
    env,
    cli: { ...(stateDir !== undefined ? { stateDir } : {}), ...(bool(values, 'dev') ? { dev: true } : {}) },
  });
}

function directory(steps: InitStep[], what: string, path: string, mode: number): void {
  if (existsSync(path)) {
    steps.push({ what, path, action: 'exists' });
    return;
  }
  mkdirSync(path, { recursive: true, mode });
  steps.push({ what, path, action: 'created', detail: `0${mode.toString(8)}` });
}

function socketGroup(steps: InitStep[], group: string, create: boolean): void {
  if (/^\d+$/.test(group) || groupId(group) !== undefined) {
    steps.push({ what: 'socket group', path: group, action: 'exists' });
    return;
  }
  const command = `groupadd --system ${group}`;
  if (!create) {
    steps.push({ what: 'socket group', path: group, action: 'todo', command, detail: 'the daemon refuses to start without it (or set socket.group: "")' });
    return;
  }
  const r = spawnSync('groupadd', ['--system', group], { encoding: 'utf8' });
  if (r.status !== 0) throw new CliError('InitFailed', `${command} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  steps.push({ what: 'socket group', path: group, action: 'created', detail: command });
}

async function root(steps: InitStep[], config: DaemonConfig, values: Values): Promise<void> {
  switch (config.root.type) {
    case 'local': {
      const keyFile = resolve(str(values, 'key-file') ?? config.root.local.keyFile);
      if (config.root.local.passphraseEnv !== undefined && str(values, 'key-file') === undefined) {
        steps.push({ what: 'root', action: 'checked', detail: `passphrase root (${config.root.local.passphraseEnv}): no key file to create` });
        return;
      }
      if (existsSync(keyFile)) throw new KmsError('KeyAlreadyExists', `root key file ${keyFile} already exists; refusing to overwrite it`);
      mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
      createKeyFile(keyFile);
      steps.push({ what: 'root key', path: keyFile, action: 'created', detail: '0600; back it up: without it no key record opens' });
      return;
    }
    case 'pkcs11': {
      const p11 = config.root.pkcs11;
      if (p11 === undefined) throw new CliError('InitFailed', 'root.type is pkcs11 but the config has no root.pkcs11 section');
      let result;
      try {
        result = await initPkcs11Root({ ...p11, env: process.env, sessions: 1 }); // the config's section is the root's options
      } catch (err) {
        throw new CliError('InitFailed', err instanceof Error ? err.message : String(err));
      }
      steps.push({
        what: 'root key', path: `pkcs11 token "${result.token}" (serial ${result.serial})`, action: result.created ? 'created' : 'checked', detail: result.message,
      });
      return;
    }
    case 'vault-transit':
      steps.push(await initVaultTransit(config));
      return;
    case 'gcp-kms':
      steps.push(await initGcpKms(config));
      return;
    case 'azure-keyvault':
      steps.push(await initAzureKeyVault(config));
      return;
    case 'aws-kms':
      steps.push(await initAwsKms(config));
      return;
  }
}

export async function init(values: Values, out: Out): Promise<void> {
  const config = configFor(values);
  const steps: InitStep[] = [];
  directory(steps, 'state directory', config.stateDir, 0o700);
  await root(steps, config, values);
  directory(steps, 'audit log directory', dirname(config.audit.path), 0o700);
  directory(steps, 'socket directory', dirname(config.socket.path), 0o755);
  if (config.socket.group !== undefined) socketGroup(steps, config.socket.group, bool(values, 'create-group'));
  const todo = steps.filter((s) => s.action === 'todo');
  const human = steps.map((s) => `${s.action.padEnd(8)} ${s.what}${s.path !== undefined ? ` ${s.path}` : ''}${s.detail !== undefined ? ` (${s.detail})` : ''}`);
  if (todo.length > 0) human.push('still to do (then start rustfs-kmsd):', ...todo.map((s) => `  ${s.command}`));
  else human.push(`ready: rustfs-kmsd${config.dev ? ' --dev' : ''} can start with this configuration`);
  // Exit 0 with steps left: init did all it may; `ready: false` tells scripts what remains.
  out(human.join('\n') + '\n', { state_dir: config.stateDir, root_type: config.root.type, steps, ready: todo.length === 0 });
}
