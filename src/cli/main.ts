#!/usr/bin/env node
// rustfs-kms: the operator's tool. Talks to rustfs-kmsd over its socket (found from --socket, then
// $RUSTFS_KMS_SOCKET, then the default path); init, backup, restore and audit work on files.
// The commands, their options and help come from the table in ./commands.ts.
import { ConfigError } from '../config/index.js';
import { KmsError } from '../errors.js';
import { VERSION } from '../package-info.js';
import { runDaemonCommand, type Out } from './daemon-commands.js';
import { toJson } from './format.js';
import { helpFor, usageErrorText } from './help.js';
import { init } from './init.js';
import { auditVerify, backup, completion, installSystemdCommand, restore } from './local-commands.js';
import { CliError } from './locate.js';
import { UsageError, bool, parseCommandLine } from './parse.js';

async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'version') {
    process.stdout.write(`rustfs-kms ${VERSION}\n`);
    return;
  }
  if (parsed.kind === 'help') {
    const text = helpFor(parsed.words);
    if (text === undefined) throw new UsageError(`no help for "${parsed.words.join(' ')}": not a command`);
    process.stdout.write(text);
    return;
  }
  const { command, values, args } = parsed;
  const out: Out = (human, json) => {
    process.stdout.write(bool(values, 'json') ? toJson(json) : human);
  };
  if (command.daemon) return runDaemonCommand(command.path, values, args, out);
  switch (command.path.join(' ')) {
    case 'init': return init(values, out);
    case 'audit verify': return auditVerify(values, args, out);
    case 'backup': return backup(values, args[0] as string, out);
    case 'restore': return restore(values, args[0] as string, out);
    case 'install-systemd': return installSystemdCommand(values, out);
    case 'completion': return completion(args[0] as string);
    default: throw new Error(`no handler for "${command.path.join(' ')}"`);
  }
}

run(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(usageErrorText(err.message, err.words));
    process.exit(2);
  }
  const json = process.argv.includes('--json');
  const code = err instanceof KmsError || err instanceof CliError ? err.code : err instanceof ConfigError ? 'ConfigError' : 'Internal';
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(toJson({ error: { code, message } }));
  process.stderr.write(`rustfs-kms: ${code}: ${message}\n`);
  process.exit(1);
});
