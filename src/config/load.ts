// The pipeline: defaults → YAML file → RUSTFS_KMS_* environment → command line (DESIGN §8).
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { checkValue } from './check.js';
import { applyCli } from './cli.js';
import { applyEnv } from './env.js';
import { ConfigError, FieldErrors, describe } from './errors.js';
import { finalize } from './finalize.js';
import { emptyLayer, layerFromFile } from './layer.js';
import { ConfigFileSchema } from './schema.js';
import type { CliOptions, ConfigEnv, ConfigFromYamlOptions, DaemonConfig, LoadConfigInput } from './types.js';
import { parseYaml } from './yaml.js';

export const DEFAULT_CONFIG_PATH = '/etc/rustfs-kms/config.yaml';
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
  ELOOP: 'too many symbolic links',
};

function resolveCwd(cwd: string | undefined): string {
  const dir = cwd ?? process.cwd();
  if (!path.isAbsolute(dir)) throw new ConfigError('cwd', 'an absolute directory', { got: describe(dir) });
  return path.normalize(dir);
}

interface Source {
  configPath: string | undefined;
  sourceName: string | undefined;
  baseDir: string | undefined;
}

function build(text: string | undefined, source: Source, env: ConfigEnv, cli: CliOptions, cwd: string): DaemonConfig {
  let layer = emptyLayer();
  let yamlErrors = new FieldErrors(() => source.sourceName);
  if (text !== undefined) {
    const parsed = parseYaml(text, source.sourceName);
    yamlErrors = new FieldErrors(parsed.locate);
    if (parsed.value !== null) {
      const file = checkValue(ConfigFileSchema, parsed.value, { baseDir: source.baseDir, errors: yamlErrors });
      layer = layerFromFile(file, yamlErrors);
    }
  }
  applyEnv(layer, env, cwd);
  applyCli(layer, cli, cwd);
  return finalize(layer, { dev: cli.dev === true, reload: cli.reload === true, cwd, env, configPath: source.configPath, yaml: yamlErrors });
}

/** Which file to read: --config, else $RUSTFS_KMS_CONFIG, else the default file (never in dev mode). */
function chooseFile(input: LoadConfigInput, cwd: string): { file: string | undefined; field: string; explicit: boolean } {
  if (input.configPath !== undefined) {
    const flag = input.configFlag ?? '--config';
    if (input.configPath === '') throw new ConfigError(flag, 'a file path', { got: '""' });
    return { file: path.resolve(cwd, input.configPath), field: flag, explicit: true };
  }
  const fromEnv = input.env.RUSTFS_KMS_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return { file: path.resolve(cwd, fromEnv), field: 'RUSTFS_KMS_CONFIG', explicit: true };
  if (input.cli.dev === true) return { file: undefined, field: 'config file', explicit: false };
  return { file: input.defaultConfigPath ?? DEFAULT_CONFIG_PATH, field: 'config file', explicit: false };
}

/** The file's text; undefined when the optional default file does not exist. */
function readConfigText(file: string, field: string, explicit: boolean): string | undefined {
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_CONFIG_FILE_BYTES) {
      const expected = `a YAML file of at most ${MAX_CONFIG_FILE_BYTES} bytes`;
      throw new ConfigError(field, expected, { detail: `expected ${expected}, got ${describe(file)} (${bytes.length} bytes)` });
    }
    return bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return undefined; // the default file is optional
    const reason = FILE_ERRORS[code ?? ''] ?? String(code ?? err);
    throw new ConfigError(field, 'a readable YAML file', { detail: `expected a readable YAML file, got ${describe(file)} (${reason})` });
  }
}

/**
 * Loads the daemon configuration: defaults → YAML file → RUSTFS_KMS_* environment → command line.
 * The file is `configPath` (--config), else $RUSTFS_KMS_CONFIG, else /etc/rustfs-kms/config.yaml if it
 * exists (never in dev mode). Throws {@link ConfigError} for any bad value.
 */
export function loadConfig(input: LoadConfigInput): DaemonConfig {
  const cwd = resolveCwd(input.cwd);
  const chosen = chooseFile(input, cwd);
  let file = chosen.file;
  const text = file !== undefined ? readConfigText(file, chosen.field, chosen.explicit) : undefined;
  if (text === undefined) file = undefined;
  const source = { configPath: file, sourceName: file, baseDir: file !== undefined ? path.dirname(file) : undefined };
  return build(text, source, input.env, input.cli, cwd);
}

/**
 * Same pipeline as {@link loadConfig}, with the YAML given as text (no file is read). Environment and
 * command line default to empty, so tests are hermetic.
 */
export function configFromYaml(text: string, options: ConfigFromYamlOptions = {}): DaemonConfig {
  const cwd = resolveCwd(options.cwd);
  const baseDir = options.baseDir !== undefined ? path.resolve(cwd, options.baseDir) : undefined;
  return build(text, { configPath: options.configPath, sourceName: options.sourceName, baseDir }, options.env ?? {}, options.cli ?? {}, cwd);
}
