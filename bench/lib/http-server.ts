// The comparison server of bench:rpc: the SAME key service and pipeline as rustfs-kmsd (LocalRoot +
// FileKeystore + KeyService + Pipeline with the default policy, wired like src/daemon/daemon.ts),
// served as HTTP/JSON on loopback by node:http — what an HTTP KMS costs. Run as its own process:
//
//   node dist/bench/lib/http-server.js --state-dir DIR --key KEY [--no-audit]
//
// POST /generate_data_key  {key_id, context?, bytes?}  →  200 {plaintext: b64, ciphertext: b64, key_id, key_version}
// Errors: {error: {code, message}} with 400 (bad request), 403 (AccessDenied), 404, 500.
// It creates KEY on start, then prints "listening <port>" once it accepts connections.
//
// Audit: the daemon's own AuditLog (src/audit/log.ts) at <state-dir>/audit.log with the daemon's
// --dev defaults (fsync every 1000 ms, rotate at 100 MiB), so both sides pay for one hash-chained
// line per operation; --no-audit attaches NO_AUDIT instead.
import http from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { native } from '../../src/native/index.js';
import { LocalRoot } from '../../src/roots/local.js';
import { FileKeystore } from '../../src/keystore/file.js';
import { KeyService } from '../../src/keys/service.js';
import { Policy } from '../../src/access/policy.js';
import { Pipeline, NO_AUDIT } from '../../src/ops/pipeline.js';
import { KmsError } from '../../src/errors.js';
import type { Caller } from '../../src/access/identity.js';
import { mkdirSync } from 'node:fs';
import { AuditLog } from '../../src/audit/log.js';

const STATUS: Record<string, number> = {
  InvalidRequest: 400, InvalidKeyId: 400, UnknownOperation: 404, KeyNotFound: 404, AccessDenied: 403,
  KeyDisabled: 409, KeyPendingDeletion: 409, KeyAlreadyExists: 409, BackendUnavailable: 503,
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'state-dir': { type: 'string' }, key: { type: 'string' }, 'no-audit': { type: 'boolean' } },
    strict: true,
  });
  const stateDir = values['state-dir'];
  const keyId = values.key;
  if (stateDir === undefined || keyId === undefined) throw new Error('usage: http-server --state-dir DIR --key KEY');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  native.setAllowUnlockedMemory(false);

  const root = LocalRoot.open({ keyFile: join(stateDir, 'root.key'), saltFile: join(stateDir, 'root.salt'), create: true, env: process.env });
  const keystore = new FileKeystore(stateDir);
  const service = new KeyService({ keystore, root, idleTtlMs: 300_000, offlineTtlMs: 3_600_000 });
  await service.start();
  await service.createKey(keyId);
  const uid = process.getuid?.() ?? 0;
  const audit = values['no-audit'] === true
    ? NO_AUDIT
    : AuditLog.open({ path: join(stateDir, 'audit.log'), fsync: 'interval', fsyncIntervalMs: 1000, maxBytes: 104_857_600 });
  const pipeline = new Pipeline(
    { service, version: 'bench', limits: {
      max_frame_bytes: 1 << 20, max_plaintext_bytes: 65_536, max_batch_count: 1024, max_list_limit: 1000,
      max_connections: 1024, max_inflight_per_connection: 256,
    }, endpoint: stateDir },
    Policy.defaults(uid, undefined),
    audit,
  );

  const send = (res: http.ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    if (req.method !== 'POST' || req.url !== '/generate_data_key') {
      send(res, 404, { error: { code: 'UnknownOperation', message: `${req.method} ${req.url}` } });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let args: unknown;
      try {
        args = JSON.parse(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
      } catch {
        send(res, 400, { error: { code: 'InvalidRequest', message: 'body is not JSON' } });
        return;
      }
      if (typeof args !== 'object' || args === null || Array.isArray(args)) {
        send(res, 400, { error: { code: 'InvalidRequest', message: 'body must be a JSON object' } });
        return;
      }
      const caller: Caller = { kind: 'access-key', uid, sourceIp: req.socket.remoteAddress ?? '' };
      pipeline.run('generate_data_key', args as Record<string, unknown>, caller, undefined, 'http', (error: KmsError | null, result?: unknown) => {
        if (error !== null) {
          send(res, STATUS[error.code] ?? 500, { error: { code: error.code, message: error.message } });
          return;
        }
        const r = result as { plaintext?: Buffer; ciphertext: Buffer; key_id: string; key_version: number };
        const body: Record<string, unknown> = {};
        if (r.plaintext !== undefined) body.plaintext = r.plaintext.toString('base64');
        body.ciphertext = r.ciphertext.toString('base64');
        body.key_id = r.key_id;
        body.key_version = r.key_version;
        send(res, 200, body);
      });
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`listening ${typeof addr === 'object' && addr !== null ? addr.port : 0} audit=${audit === NO_AUDIT ? 'off' : 'on'}\n`);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    const closing = audit instanceof AuditLog ? audit.close() : Promise.resolve();
    void closing.then(() => service.close()).finally(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`http-server: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
