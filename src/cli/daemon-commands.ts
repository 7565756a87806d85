// The commands that talk to rustfs-kmsd over its socket: keys, data, status and health.
import { writeFileSync } from 'node:fs';
import { KmsClient, type KeyInfo } from '../rpc/client.js';
import { VERSION } from '../package-info.js';
import { block, table, time } from './format.js';
import { connectFailure, fileFailure, socketPath } from './locate.js';
import { UsageError, bool, list, str, type Values } from './parse.js';

export type Out = (human: string, json: unknown) => void;

export function integer(value: string | undefined, name: string, words: readonly string[]): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`, words);
  return Number(value);
}

function pairs(values: string[] | undefined, name: string, words: readonly string[]): Record<string, string> | undefined {
  if (values === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name} takes KEY=VALUE, got "${v}"`, words);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const ENVELOPE_VERSION = 0x01;
const BASE64_TEXT = /^[A-Za-z0-9+/=\s]+$/;

/** The envelope from stdin: raw, or base64 with --base64; base64 without the flag is named, not sent. */
export function envelopeFrom(input: Buffer, base64: boolean, words: readonly string[]): Buffer {
  const text = input.toString('latin1');
  if (base64) {
    if (!BASE64_TEXT.test(text)) throw new UsageError('--base64: stdin is not base64 text', words);
    return Buffer.from(text.replace(/\s+/g, ''), 'base64');
  }
  if (input.length > 0 && input[0] !== ENVELOPE_VERSION && BASE64_TEXT.test(text) && Buffer.from(text.replace(/\s+/g, ''), 'base64')[0] === ENVELOPE_VERSION) {
    throw new UsageError('stdin is base64 text, not a raw envelope (which starts with byte 0x01); add --base64', words);
  }
  return input;
}

function keyTable(keys: KeyInfo[]): string {
  return table(
    ['KEY', 'STATE', 'VERSION', 'ORIGIN', 'CREATED', 'DESCRIPTION'],
    keys.map((k) => [k.keyId, k.state, String(k.currentVersion), k.origin, time(k.createdAt) ?? '', k.description]),
  );
}

function keyBlock(k: KeyInfo): string {
  return block([
    ['key', k.keyId], ['state', k.state], ['current version', k.currentVersion], ['versions', k.versions],
    ['algorithm', k.algorithm], ['origin', k.origin], ['created', time(k.createdAt)], ['rotated', time(k.rotatedAt)],
    ['deletion date', time(k.deletionDate)], ['rotation period (days)', k.rotationPeriodDays],
    ['description', k.description || undefined],
    ['tags', Object.keys(k.tags).length > 0 ? Object.entries(k.tags).map(([a, b]) => `${a}=${b}`).join(', ') : undefined],
  ]);
}

async function withClient<T>(values: Values, words: readonly string[], fn: (client: KmsClient) => Promise<T>, waitS = 0): Promise<T> {
  const timeoutMs = integer(str(values, 'timeout-ms'), 'timeout-ms', words) ?? 30_000;
  const path = socketPath(str(values, 'socket'), process.env, process.cwd());
  const deadline = Date.now() + waitS * 1000;
  let client: KmsClient;
  for (;;) {
    try {
      client = await KmsClient.connect(path, { timeoutMs, reconnect: false, ctx: { user_agent: `rustfs-kms/${VERSION}` } });
      break;
    } catch (err) {
      const failure = connectFailure(path, err);
      if (failure.code !== 'DaemonNotRunning' || Date.now() >= deadline) throw failure;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export async function runDaemonCommand(words: readonly string[], values: Values, args: string[], out: Out): Promise<void> {
  const json = bool(values, 'json');
  const context = pairs(list(values, 'context'), 'context', words);
  const ctxOpt = context !== undefined ? { context } : {};
  const one = (fn: (c: KmsClient, id: string) => Promise<KeyInfo>) =>
    withClient(values, words, async (c) => {
      const k = await fn(c, args[0] as string);
      out(keyBlock(k), k);
    });
  switch (words.join(' ')) {
    case 'key create': {
      const tags = pairs(list(values, 'tag'), 'tag', words);
      const period = integer(str(values, 'rotation-period-days'), 'rotation-period-days', words);
      const description = str(values, 'description');
      return one((c, id) => c.createKey(id, {
        ...(description !== undefined ? { description } : {}), ...(tags ? { tags } : {}), ...(period !== undefined ? { rotationPeriodDays: period } : {}),
      }));
    }
    case 'key status': return one((c, id) => c.describeKey(id));
    case 'key enable': return one((c, id) => c.enableKey(id));
    case 'key disable': return one((c, id) => c.disableKey(id));
    case 'key rotate': return one((c, id) => c.rotateKey(id));
    case 'key delete': {
      const days = integer(str(values, 'pending-days'), 'pending-days', words) ?? 30;
      return one((c, id) => c.scheduleKeyDeletion(id, days));
    }
    case 'key cancel-delete': return one((c, id) => c.cancelKeyDeletion(id));
    case 'key list': {
      const limit = integer(str(values, 'limit'), 'limit', words);
      const prefix = str(values, 'prefix');
      const marker = str(values, 'marker');
      return withClient(values, words, async (c) => {
        const page = await c.listKeys({ ...(prefix !== undefined ? { prefix } : {}), ...(marker !== undefined ? { marker } : {}), ...(limit !== undefined ? { limit } : {}) });
        out(keyTable(page.keys) + (page.truncated ? `(more: --marker ${page.nextMarker})\n` : ''), page);
      });
    }
    case 'encrypt': {
      const flag = str(values, 'key');
      if (flag !== undefined && args[0] !== undefined && flag !== args[0]) throw new UsageError(`encrypt: --key ${flag} and KEY ${args[0]} disagree; give one`, words);
      const keyId = flag ?? args[0];
      if (keyId === undefined) throw new UsageError('encrypt needs the key: --key KEY', words);
      const plaintext = await readStdin();
      return withClient(values, words, async (c) => {
        const r = await c.encrypt(keyId, plaintext, ctxOpt);
        if (json) out('', r);
        else process.stdout.write(bool(values, 'base64') ? `${r.ciphertext.toString('base64')}\n` : r.ciphertext);
      });
    }
    case 'decrypt': {
      const ciphertext = envelopeFrom(await readStdin(), bool(values, 'base64'), words);
      return withClient(values, words, async (c) => {
        const r = await c.decrypt(ciphertext, ctxOpt);
        if (json) out('', r);
        else process.stdout.write(r.plaintext);
      });
    }
    case 'datakey': return datakey(values, args[0] as string, ctxOpt, words, out);
    case 'health':
      return withClient(values, words, async (c) => {
        const h = await c.health();
        out(block([['healthy', h.healthy], ['backend', h.backend], ['version', h.version], ['detail', h.detail]]), h);
        if (!h.healthy) process.exitCode = 1;
      }, integer(str(values, 'wait'), 'wait', words) ?? 0);
    case 'status':
      return withClient(values, words, async (c) => {
        const s = await c.status();
        out(block([
          ['root', s.rootType], ['keystore', s.keystoreType], ['endpoint', s.endpoint], ['keys', s.keyCount],
          ['uptime (s)', Math.round(s.uptimeMs / 1000)], ['max frame bytes', s.limits.maxFrameBytes],
          ['max connections', s.limits.maxConnections],
          ['audit head', s.auditHead === undefined ? undefined : `${s.auditHead.seq}:${s.auditHead.hash}`],
        ]), s);
      });
    default:
      throw new Error(`no handler for "${words.join(' ')}"`);
  }
}

async function datakey(values: Values, keyId: string, ctxOpt: { context?: Record<string, string> }, words: readonly string[], out: Out): Promise<void> {
  const bytes = integer(str(values, 'bytes'), 'bytes', words);
  const file = str(values, 'ciphertext-out');
  const base64 = bool(values, 'base64');
  if (base64 && file === undefined) throw new UsageError('--base64 goes with --ciphertext-out (the printed ciphertext is always base64)', words);
  return withClient(values, words, async (c) => {
    const r = await c.generateDataKey(keyId, {
      ...ctxOpt, ...(bytes !== undefined ? { bytes } : {}), ...(bool(values, 'without-plaintext') ? { withoutPlaintext: true } : {}),
    });
    let written: string | undefined;
    if (file !== undefined) {
      try {
        writeFileSync(file, base64 ? `${r.ciphertext.toString('base64')}\n` : r.ciphertext, { mode: 0o600 });
      } catch (err) {
        throw fileFailure('write', file, err);
      }
      const ctxArgs = Object.entries(ctxOpt.context ?? {}).map(([k, v]) => ` --context ${k}=${v}`).join('');
      written = base64
        ? `written to ${file} as base64 text (decrypt: rustfs-kms decrypt --base64${ctxArgs} < ${file})`
        : `written to ${file} as raw bytes, ${r.ciphertext.length} (decrypt: rustfs-kms decrypt${ctxArgs} < ${file})`;
    }
    out(block([
      ['key', r.keyId], ['version', r.keyVersion], ['plaintext (hex)', r.plaintext?.toString('hex')],
      written !== undefined ? ['ciphertext', written] : ['ciphertext (base64)', r.ciphertext.toString('base64')],
    ]), { ...r, ...(file !== undefined ? { ciphertext_file: file, ciphertext_file_format: base64 ? 'base64' : 'raw' } : {}) });
  });
}
