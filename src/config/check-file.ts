// rustfs-kmsd --check-config FILE: the daemon's own loading (file, environment, flags), nothing started.
import { loadConfig } from './load.js';
import { redactedConfig } from './redact.js';
import type { CliOptions, ConfigEnv } from './types.js';

export interface CheckConfigInput {
  file: string;
  env: ConfigEnv;
  cli: CliOptions;
  cwd?: string;
}

/** "FILE: ok" and the effective config (secrets redacted) as JSON; throws ConfigError for a bad value. */
export function checkConfigFile(input: CheckConfigInput): string {
  const config = loadConfig({
    configPath: input.file,
    configFlag: '--check-config',
    env: input.env,
    cli: input.cli,
    ...(input.cwd !== undefined ? { cwd: input.cwd } : {}),
  });
  return `${input.file}: ok\n${JSON.stringify(redactedConfig(config), null, 2)}\n`;
}
