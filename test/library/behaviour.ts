// ONE behavioural suite for the in-process KmsManager and the socket KmsClient: the same calls, the
// same request types and OperationContext, the same answers and the same error codes. A subject is
// made by its factory; everything below is written against KmsApi only.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DecryptRequest, EncryptRequest, GenerateKeyRequest, KmsError, ListKeysRequest, OperationContext, type KmsApi,
} from '../../src/index.js';

export interface Subject {
  kms: KmsApi;
  /** Where this subject's audit records go. */
  auditPath: string;
  /** The transport its audit records name. */
  transport: 'library' | 'socket';
  close(): Promise<void>;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return (err as KmsError).code;
  }
  throw new Error('expected the call to fail');
}

function auditRecords(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function behaviourSuite(name: string, open: () => Promise<Subject>): void {
  describe(`KmsApi behaviour: ${name}`, () => {
    let s: Subject;
    let kms: KmsApi;
    let n = 0;
    const kid = (p: string) => `${p}-${++n}`;

    beforeAll(async () => {
      s = await open();
      kms = s.kms;
    });
    afterAll(async () => {
      await s?.close();
    });

    it('healthCheck and backendInfo describe a healthy local backend', async () => {
      const h = await kms.healthCheck();
      expect(h).toMatchObject({ healthy: true, backend: 'local/file' });
      expect(await kms.health()).toEqual(h);
      const info = await kms.backendInfo();
      expect(info).toMatchObject({ healthy: true, backend: 'local/file', rootType: 'local', keystoreType: 'file', version: h.version });
      expect(info.limits.maxPlaintextBytes).toBe(65536);
      expect(info.auditHead?.seq).toBeGreaterThan(0);
    });

    it('createKey, describeKey, and the lifecycle errors', async () => {
      const id = kid('life');
      const created = await kms.createKey(id, { description: 'd', tags: { team: 'storage' }, rotationPeriodDays: 90 });
      expect(created).toMatchObject({
        keyId: id, state: 'Enabled', currentVersion: 1, versions: 1, algorithm: 'XAES-256-GCM', origin: 'local',
        description: 'd', tags: { team: 'storage' }, rotationPeriodDays: 90,
      });
      expect(await kms.describeKey(id)).toEqual(created);
      expect(await code(kms.createKey(id))).toBe('KeyAlreadyExists');
      expect(await code(kms.describeKey(kid('missing')))).toBe('KeyNotFound');
      expect(await code(kms.createKey('bad/id'))).toBe('InvalidKeyId');
      expect(await code(kms.createKey(kid('x'), { rotationPeriodDays: 0 }))).toBe('InvalidRequest');
    });

    it('updateKeyDescription, tagKey and untagKey change metadata and keep the key', async () => {
      const key = `meta-${Date.now().toString(36)}`;
      await kms.createKey(key, { description: 'first', tags: { team: 'storage', tier: 'hot' } });
      expect((await kms.updateKeyDescription(key, 'second')).description).toBe('second');
      expect((await kms.updateKeyDescription(key, '')).description).toBe('');
      expect((await kms.tagKey(key, { tier: 'cold', owner: 'ops' })).tags).toEqual({ team: 'storage', tier: 'cold', owner: 'ops' });
      const untagged = await kms.untagKey(key, ['team', 'not-there']);
      expect(untagged.tags).toEqual({ tier: 'cold', owner: 'ops' });
      expect(untagged.currentVersion).toBe(1);
      expect((await kms.describeKey(key)).tags).toEqual({ tier: 'cold', owner: 'ops' });
      expect(await code(kms.updateKeyDescription(key, 'x'.repeat(1025)))).toBe('InvalidRequest');
      expect(await code(kms.tagKey(key, { big: 'v'.repeat(257) }))).toBe('InvalidRequest');
      const many = Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`t${i}`, 'v']));
      expect(await code(kms.tagKey(key, many))).toBe('InvalidRequest'); // 2 + 49 > 50
      expect(await code(kms.untagKey(key, Array.from({ length: 51 }, (_, i) => `t${i}`)))).toBe('InvalidRequest');
      expect(await code(kms.tagKey('no-such-key', { a: 'b' }))).toBe('KeyNotFound');
    });

    it('listKeys pages with a ListKeysRequest', async () => {
      const prefix = kid('page');
      const ids = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`, `${prefix}-d`, `${prefix}-e`];
      for (const id of ids) await kms.createKey(id);
      const seen: string[] = [];
      let req = new ListKeysRequest().withPrefix(prefix).withLimit(2);
      for (let page = 0; page < 5; page++) {
        const r = await kms.listKeys(req);
        seen.push(...r.keys.map((k) => k.keyId));
        if (!r.truncated) break;
        req = ListKeysRequest.new().withPrefix(prefix).withLimit(2).withMarker(r.nextMarker as string);
      }
      expect(seen).toEqual(ids);
      expect(await code(kms.listKeys(new ListKeysRequest().withLimit(1001)))).toBe('InvalidRequest');
    });

    it('generateDataKey with a GenerateKeyRequest, decrypt with a DecryptRequest, bound to the context', async () => {
      const id = kid('dk');
      await kms.createKey(id);
      const dk = await kms.generateDataKey(new GenerateKeyRequest(id).withContext('bucket', 'photos').withContext('object', 'a.jpg'));
      expect(dk.plaintext?.length).toBe(32);
      expect(dk.keyId).toBe(id);
      expect(dk.keyVersion).toBe(1);
      const back = await kms.decrypt(new DecryptRequest(dk.ciphertext).withEncryptionContext({ object: 'a.jpg', bucket: 'photos' }));
      expect(back.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
      expect(back).toMatchObject({ keyId: id, keyVersion: 1 });
      // The positional form is the same call.
      const again = await kms.decrypt(dk.ciphertext, { context: { bucket: 'photos', object: 'a.jpg' } });
      expect(again.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
      expect(await code(kms.decrypt(new DecryptRequest(dk.ciphertext).withContext('bucket', 'photos')))).toBe('InvalidCiphertext');
      expect(await code(kms.decrypt(new DecryptRequest(Buffer.from('not an envelope'))))).toBe('InvalidCiphertext');
    });

    it('key specs, lengths and sealed-only data keys', async () => {
      const id = kid('spec');
      await kms.createKey(id);
      expect((await kms.generateDataKey(new GenerateKeyRequest(id, 'AES_128'))).plaintext?.length).toBe(16);
      expect((await kms.generateDataKey(GenerateKeyRequest.new(id).withLength(64))).plaintext?.length).toBe(64);
      const sealed = await kms.generateDataKey(new GenerateKeyRequest(id).withoutPlaintextKey());
      expect(sealed.plaintext).toBeUndefined();
      expect((await kms.decrypt(new DecryptRequest(sealed.ciphertext))).plaintext.length).toBe(32);
      expect(await code(kms.generateDataKey(new GenerateKeyRequest(id).withLength(8)))).toBe('InvalidRequest');
      const batch = await kms.generateDataKeyBatch(id, 3, { context: { b: '1' } });
      expect(batch.keys).toHaveLength(3);
      for (const k of batch.keys) expect((await kms.decrypt(k.ciphertext, { context: { b: '1' } })).plaintext.equals(k.plaintext)).toBe(true);
    });

    it('encrypt with an EncryptRequest and the size limit', async () => {
      const id = kid('enc');
      await kms.createKey(id);
      const sealed = await kms.encrypt(new EncryptRequest(id, Buffer.from('secret')).withContext('tenant', 'acme'));
      expect(sealed).toMatchObject({ keyId: id, keyVersion: 1 });
      expect((await kms.decrypt(new DecryptRequest(sealed.ciphertext).withContext('tenant', 'acme'))).plaintext.toString()).toBe('secret');
      const positional = await kms.encrypt(id, Buffer.from('secret'), { context: { tenant: 'acme' } });
      expect(positional.ciphertext.length).toBe(sealed.ciphertext.length);
      expect(await code(kms.encrypt(new EncryptRequest(id, Buffer.alloc(65537))))).toBe('InvalidRequest');
      expect(await code(kms.encrypt(new EncryptRequest(kid('none'), Buffer.from('x'))))).toBe('KeyNotFound');
    });

    it('disable, enable, rotate, re-encrypt, schedule and cancel deletion', async () => {
      const id = kid('state');
      await kms.createKey(id);
      const v1 = await kms.generateDataKey(new GenerateKeyRequest(id));
      expect((await kms.disableKey(id)).state).toBe('Disabled');
      expect(await code(kms.generateDataKey(new GenerateKeyRequest(id)))).toBe('KeyDisabled');
      expect(await code(kms.decrypt(new DecryptRequest(v1.ciphertext)))).toBe('KeyDisabled');
      expect((await kms.enableKey(id)).state).toBe('Enabled');
      const rotated = await kms.rotateKey(id);
      expect(rotated).toMatchObject({ currentVersion: 2, versions: 2 });
      expect((await kms.decrypt(new DecryptRequest(v1.ciphertext))).keyVersion).toBe(1);
      const moved = await kms.reEncrypt(v1.ciphertext);
      expect(moved.keyVersion).toBe(2);
      expect((await kms.decrypt(moved.ciphertext)).plaintext.equals(v1.plaintext as Buffer)).toBe(true);
      const pending = await kms.scheduleKeyDeletion(id, 7);
      expect(pending.state).toBe('PendingDeletion');
      expect(await code(kms.enableKey(id))).toBe('KeyPendingDeletion');
      expect(await code(kms.scheduleKeyDeletion(id, 3))).toBe('InvalidRequest');
      expect((await kms.cancelKeyDeletion(id)).state).toBe('Disabled');
    });

    it('an OperationContext goes with the call into the audit log, as claimed', async () => {
      const id = kid('ctx');
      const base = OperationContext.new('suite-principal').withUserAgent('behaviour-suite/1');
      const ctx = base.withSourceIp('192.0.2.10').withContext('bucket', 'photos').withRequestId(`req-${id}`);
      expect(base.sourceIp).toBeUndefined(); // builders do not change the context they start from
      await kms.createKey(id, {}, ctx);
      await kms.generateDataKey(new GenerateKeyRequest(id), ctx);
      const records = auditRecords(s.auditPath).filter((r) => (r.claimed as { request_id?: string } | undefined)?.request_id === `req-${id}`);
      expect(records.map((r) => r.op)).toEqual(['create_key', 'generate_data_key']);
      for (const r of records) {
        expect(r).toMatchObject({
          transport: s.transport, key_id: id, outcome: 'success',
          claimed: { principal: 'suite-principal', user_agent: 'behaviour-suite/1', source_ip: '192.0.2.10', extra: { bucket: 'photos' } },
        });
      }
      // A context past the protocol's limits is refused the same way by both.
      let big = OperationContext.new();
      for (let i = 0; i < 33; i++) big = big.withContext(`k${i}`, 'v');
      expect(await code(kms.describeKey(id, big))).toBe('InvalidRequest');
      expect(await code(kms.describeKey(id, OperationContext.new('x'.repeat(2000))))).toBe('InvalidRequest');
    });
  });
}
