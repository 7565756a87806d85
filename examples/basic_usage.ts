// Basic usage of the in-process library, after the RustFS KMS crate's README example: a local KMS in
// a temporary directory, a master key, a data key bound to an encryption context, and encrypt /
// decrypt with that context. Run: npm run build && npm run example:basic [-- --keep]
// The temporary directory (keys, root key, audit log) is removed at the end unless --keep is given.
//
// Moving this code to the daemon changes one line: `await KmsManager.create(KmsConfig.local(dir))`
// becomes `await KmsClient.connect('/run/rustfs-kms/kms.sock')`.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecryptRequest, EncryptRequest, GenerateKeyRequest, KmsConfig, KmsError, KmsManager, OperationContext,
} from '../src/index.js';

const KEEP = process.argv.includes('--keep');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-example-'));
  const auditLog = join(dir, 'kms', 'audit.log');
  // A local KMS: root key file, key records and audit log under `dir` (created on first use).
  const kms = await KmsManager.create(KmsConfig.local(join(dir, 'kms')));
  try {
    // Who the calls are for; recorded in the audit log as claimed, never trusted for access.
    const ctx = OperationContext.new('example-app').withUserAgent('basic_usage/1.0').withSourceIp('127.0.0.1');

    // 1. A master key.
    const key = await kms.createKey('my-master-key', { description: 'example master key' }, ctx);
    console.log(`created master key ${key.keyId} (version ${key.currentVersion}, ${key.algorithm})`);

    // 2. A data key for one object, bound to its bucket and name.
    const dataKey = await kms.generateDataKey(
      new GenerateKeyRequest('my-master-key', 'AES_256').withContext('bucket', 'photos').withContext('object', 'cat.jpg'),
      ctx,
    );
    console.log(`data key: ${dataKey.plaintext?.length} bytes plaintext, ${dataKey.ciphertext.length} bytes sealed`);

    // 3. Later: unseal it with the same context.
    const opened = await kms.decrypt(
      new DecryptRequest(dataKey.ciphertext).withContext('bucket', 'photos').withContext('object', 'cat.jpg'),
      ctx,
    );
    console.log(`unsealed data key matches: ${Buffer.compare(opened.plaintext, dataKey.plaintext as Buffer) === 0}`);

    // 4. Encrypt a small secret directly, with a context.
    const sealed = await kms.encrypt(new EncryptRequest('my-master-key', Buffer.from('hello, RustFS')).withContext('tenant', 'acme'), ctx);
    const plain = await kms.decrypt(new DecryptRequest(sealed.ciphertext).withContext('tenant', 'acme'), ctx);
    console.log(`decrypted: ${plain.plaintext.toString('utf8')}`);

    // 5. The wrong context does not open it: one error code for every failure, no oracle.
    try {
      await kms.decrypt(new DecryptRequest(sealed.ciphertext).withContext('tenant', 'other'), ctx);
    } catch (err) {
      if (!(err instanceof KmsError)) throw err;
      console.log(`wrong context refused: ${err.code}`);
    }

    const health = await kms.healthCheck();
    console.log(`healthy: ${health.healthy} (${health.backend})`);
  } finally {
    await kms.close();
    // Counted after close (flushed); the path is printed only when it will still be there.
    const records = !existsSync(auditLog) ? 0 : readFileSync(auditLog, 'utf8').split('\n').filter((l) => l !== '').length;
    if (KEEP) {
      console.log(`audit log: ${records} records in ${auditLog} (kept: rustfs-kms audit verify ${auditLog})`);
    } else {
      rmSync(dir, { recursive: true, force: true });
      console.log(`audit log: ${records} records, removed with the example's temporary directory (--keep keeps it)`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
