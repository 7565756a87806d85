// The pkcs11 root and the key service in this process, on a SoftHSM2 token of its own: what the
// daemon tests cannot reach without waiting days (purge after the deletion window), the wrapped
// blob format and its failure modes, the seal counters, and the secure-buffer views handed to
// pkcs11js.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { Pkcs11Root, PKCS11_WRAPPED_BYTES, initPkcs11Root, type Pkcs11RootOptions } from '../../src/roots/pkcs11.js';
import { SealCounters } from '../../src/roots/pkcs11-counter.js';
import { keyMaterialAad } from '../../src/roots/types.js';
import { FileKeystore } from '../../src/keystore/file.js';
import { KeyService } from '../../src/keys/service.js';
import { KmsError } from '../../src/errors.js';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import { SOFTHSM_MODULE, haveSoftHsm, listSecretKeys, makeToken, type SoftToken } from './harness.js';

const DAY_MS = 86_400_000;

afterAll(() => cleanupTempDirs());

describe('seal counters', () => {
  it('reserve blocks on disk, count from the reservation after a restart, and flag unknown versions', async () => {
    const dir = makeTempDir('kms-counters-');
    const path = join(dir, 'counters.json');
    const counters = new SealCounters(path, { limit: 10, block: 4 });
    await counters.register('k', 1);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ format: 1, reserved: { 'k#1': 4 } });
    for (let i = 0; i < 4; i++) expect(counters.take('k', 1)).toBeUndefined(); // covered by the block
    const wait = counters.take('k', 1);
    expect(wait).toBeInstanceOf(Promise);
    await wait;
    expect(counters.used('k', 1)).toBe(5);
    expect(JSON.parse(readFileSync(path, 'utf8')).reserved['k#1']).toBe(8);
    expect(counters.rotationDue('k', 1)).toBe(false);

    // Restart: whatever was reserved counts as used.
    const again = new SealCounters(path, { limit: 10, block: 4 });
    expect(again.used('k', 1)).toBe(8);
    expect(again.rotationDue('k', 1)).toBe(false);
    await again.take('k', 1);
    await again.take('k', 1);
    expect(again.rotationDue('k', 1)).toBe(true);
    // Never counted (counter file lost): due at once.
    expect(again.rotationDue('k', 2)).toBe(true);
    await again.forget('k', 1);
    expect(JSON.parse(readFileSync(path, 'utf8')).reserved).toEqual({});
  });
});

describe.skipIf(!haveSoftHsm())('pkcs11 root in process', () => {
  let token: SoftToken;
  let stateDir: string;
  const options = (mode: 'wrap' | 'on-token', extra: Partial<Pkcs11RootOptions> = {}): Pkcs11RootOptions => ({
    module: SOFTHSM_MODULE, tokenLabel: token.label, pinFile: token.pinFile, env: process.env,
    keyLabel: 'inproc-root', mode, sessions: 2, stateDir, monitorIntervalMs: 0, ...extra,
  });

  beforeAll(async () => {
    token = makeToken('kms-inproc');
    process.env.SOFTHSM2_CONF = token.conf; // SoftHSM reads it in C_Initialize, in this process
    stateDir = makeTempDir('kms-inproc-state-');
    const init = await initPkcs11Root({ ...options('wrap') });
    expect(init.created).toBe(true);
    expect(init.kcv).toMatch(/^[0-9a-f]{16}$/);
  });

  it('a Buffer made over a secure buffer shares its locked memory (what pkcs11js is handed)', () => {
    const secure = native.secureBuffer(32);
    const view = Buffer.from(secure.buffer, secure.byteOffset, secure.length);
    view[0] = 0xab;
    expect(secure[0]).toBe(0xab);
    native.secureRelease(secure);
    expect(secure.length).toBe(0); // detached: the view cannot reach the wiped memory any more
    expect(view.length).toBe(0);
  });

  it('wrap mode: wraps in iv ‖ ciphertext ‖ tag, unwraps into a slot, refuses tampering and the wrong AAD', async () => {
    const root = Pkcs11Root.open(options('wrap'));
    try {
      expect(root.ref).toMatch(/^pkcs11:kms-inproc:inproc-root:[0-9a-f]{16}$/);
      expect(root.tokenKeys).toBeUndefined();
      const slot = native.slotGenerate();
      const aad = keyMaterialAad('key-a', 3);
      const wrapped = await root.wrap(slot, aad);
      expect(wrapped).toHaveLength(PKCS11_WRAPPED_BYTES);
      const back = await root.unwrap(wrapped, aad);
      // Same material: the same XAES seal under both slots.
      const seal = (s: typeof slot) => {
        const out = Buffer.alloc(32);
        native.xaesSeal(s, out, Buffer.alloc(24, 1), Buffer.alloc(16, 2), Buffer.from('x'));
        return out.toString('hex');
      };
      expect(seal(back)).toBe(seal(slot));
      const tampered = Buffer.from(wrapped);
      tampered[20] ^= 1;
      await expect(root.unwrap(tampered, aad)).rejects.toMatchObject({ code: 'Internal' });
      await expect(root.unwrap(wrapped, keyMaterialAad('key-a', 4))).rejects.toMatchObject({ code: 'Internal' });
      await expect(root.unwrap(wrapped.subarray(1), aad)).rejects.toBeInstanceOf(KmsError);
      expect(await root.health()).toEqual({ healthy: true });
      native.slotDestroy(slot);
      native.slotDestroy(back);
    } finally {
      await root.close();
    }
  });

  it('on-token mode: purge after the deletion window destroys the token objects and their counters', async () => {
    let now = Date.now();
    const root = Pkcs11Root.open(options('on-token'));
    const service = new KeyService({
      keystore: new FileKeystore(stateDir), root, idleTtlMs: 60_000, offlineTtlMs: 60_000, now: () => now,
    });
    await service.start();
    try {
      await service.createKey('purge-me');
      await service.rotateKey('purge-me');
      await service.createKey('keep-me');
      const sealed = await service.encrypt('keep-me', Buffer.from('kept'));
      const labels = () => listSecretKeys(token).map((k) => k.label).filter((l) => l.startsWith('rustfs-kms:')).sort();
      expect(labels()).toEqual(['rustfs-kms:keep-me:1', 'rustfs-kms:purge-me:1', 'rustfs-kms:purge-me:2']);
      await service.scheduleKeyDeletion('purge-me', 7);
      now += 6 * DAY_MS;
      await service.maintenance();
      expect(labels()).toHaveLength(3); // still inside its window
      now += 2 * DAY_MS;
      await service.maintenance();
      expect(labels()).toEqual(['rustfs-kms:keep-me:1']);
      expect(() => service.describeKey('purge-me')).toThrow(/does not exist/);
      const counterFile = join(stateDir, 'pkcs11-seal-counters.json');
      expect(existsSync(counterFile)).toBe(true);
      expect(Object.keys((JSON.parse(readFileSync(counterFile, 'utf8')) as { reserved: object }).reserved)).toEqual(['keep-me#1']);
      const opened = await service.decrypt(sealed.ciphertext);
      expect(opened.plaintext.toString()).toBe('kept');
      // A version created after the token object already exists is refused, not overwritten.
      await service.createKey('purge-me');
      await expect(root.tokenKeys?.create('purge-me', 1)).rejects.toThrow(/already exists/);
    } finally {
      await service.close();
    }
  });
});
