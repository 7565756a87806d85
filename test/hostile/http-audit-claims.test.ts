// Issue 11, item 12a: the access key of a request whose signature does not verify is only a claim,
// and it may be a secret typed into the wrong field (access key and secret key swapped). The figure
// held here: such a request leaves its audit line with the first 16 hex digits of the claimed key's
// SHA-256 and the secret itself appears nowhere in the audit log or the daemon's log.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons } from '../helpers/daemon.js';
import { sdkRequest } from '../http/clients.js';
import { R, startAdminDaemon, type AdminDaemon } from './admin-daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const fingerprint = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

describe('unverified access keys in audit lines', () => {
  let d: AdminDaemon;

  it('a client that swaps access key and secret key leaves a 16-hex fingerprint, never the secret', async () => {
    d = await startAdminDaemon();
    const swapped = { accessKey: d.creds.secretKey, secretKey: d.creds.accessKey };
    const r = await sdkRequest(d.port, swapped, { method: 'GET', path: `${R}/key/status`, query: { keyName: 'k' } });
    expect(r.status).toBe(403);
    const wrongSecret = { accessKey: d.creds.accessKey, secretKey: 'not-the-secret-key' };
    expect((await sdkRequest(d.port, wrongSecret, { method: 'GET', path: `${R}/status` })).status).toBe(403);
    expect((await d.send('GET', `${R}/status`)).status).toBe(200);

    // Refusals of unverified callers are aggregated per source and code: the first is written at once,
    // the second comes back as the summary written when the daemon stops, carrying the last claims.
    const verified = d.auditLines().at(-1);
    // Verified: the access key itself is the caller's identity.
    expect(verified).toMatchObject({ outcome: 'success', caller: { access_key: d.creds.accessKey } });
    expect(await d.daemon.stop()).toBe(0);
    const denied = d.auditLines().filter((l) => l.outcome === 'denied');
    expect(denied).toHaveLength(2);
    expect(denied[0]).toMatchObject({
      op: 'describe_key', error_code: 'AccessDenied', caller: { kind: 'access-key', source_ip: '127.0.0.1' },
      claimed: { extra: { unverified_access_key_sha256_16: fingerprint(d.creds.secretKey) } },
    });
    expect((denied[0]?.claimed as Record<string, unknown>).principal).toBeUndefined();
    expect(denied[1]).toMatchObject({ count: 1, claimed: { extra: { unverified_access_key_sha256_16: fingerprint(d.creds.accessKey) } } });

    const audit = readFileSync(join(d.daemon.stateDir, 'audit.log'), 'utf8');
    expect(audit).not.toContain(d.creds.secretKey);
    expect(d.daemon.stderr()).not.toContain(d.creds.secretKey);
  });
});
