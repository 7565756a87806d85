// The command-line overlay (--state-dir, --socket, --allow-unlocked-memory); errors name the flag.
import { FieldErrors } from './errors.js';
import { filePath } from './formats.js';
import type { Layer } from './layer.js';
import type { CliOptions } from './types.js';

export function applyCli(layer: Layer, cli: CliOptions, cwd: string): void {
  const errors = new FieldErrors();
  const flagPath = (flag: string, v: string | undefined): string | undefined =>
    v === undefined ? undefined : filePath(v, { field: flag, baseDir: cwd, errors });
  const stateDir = flagPath('--state-dir', cli.stateDir);
  if (stateDir !== undefined) {
    layer.stateDir = stateDir;
    layer.origins.set('state_dir', '--state-dir');
  }
  const socket = flagPath('--socket', cli.socket);
  if (socket !== undefined) {
    layer.socket.path = socket;
    layer.origins.set('socket.path', '--socket');
  }
  if (cli.allowUnlockedMemory === true) {
    layer.allowUnlockedMemory = true;
    layer.origins.set('allow_unlocked_memory', '--allow-unlocked-memory');
  }
}
