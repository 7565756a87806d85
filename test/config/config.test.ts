import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configFromYaml,
  loadConfig,
  redactedConfig,
  unrecognizedEnvVars,
  type DaemonConfig,
  type LoadConfigInput,
} from '../../src/config/index.js';

// ------------------------------------------------------------------------------------------------------
// Fixtures

const root = mkdtempSync(join(tmpdir(), 'rustfs-kms-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let caseNo = 0;
/** A fresh directory per test. */
let dir = '';
beforeEach(() => {
  caseNo += 1;
  dir = join(root, `c${caseNo}`);
  mkdirSync(dir);
});

/** Writes a YAML fixture and returns its path. */
function writeYaml(text: string, name = 'config.yaml', inDir = dir): string {
  const file = join(inDir, name);
  writeFileSync(file, text);
  return file;
}

/** loadConfig with hermetic defaults: empty env, no CLI flags, no /etc file. */
function load(input: Partial<LoadConfigInput> = {}): DaemonConfig {
  return loadConfig({
    env: {},
    cli: {},
    cwd: dir,
    defaultConfigPath: join(dir, 'no-such-default.yaml'),
    ...input,
  });
}

function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

/** configFromYaml for a snippet, returning the error it must raise. */
function yamlError(text: string, options: Parameters<typeof configFromYaml>[1] = {}): ConfigError {
  return catchConfigError(() => configFromYaml(text, { baseDir: dir, ...options }));
}

function envError(env: Record<string, string>): ConfigError {
  return catchConfigError(() => load({ env }));
}

// ------------------------------------------------------------------------------------------------------

describe('defaults', () => {
  it('production defaults', () => {
    const c = load();
    expect(c).toEqual({
      dev: false,
      allowUnlockedMemory: false,
      logLevel: 'info',
      stateDir: '/var/lib/rustfs-kms',
      socket: { path: '/run/rustfs-kms/kms.sock', mode: 0o660, group: 'rustfs-kms' },
      root: { type: 'local', local: { keyFile: '/var/lib/rustfs-kms/root.key' } },
      keystore: { type: 'file', kvMount: 'secret', prefix: 'rustfs-kms', syncIntervalS: 10 },
      cache: { idleTtlS: 300, offlineTtlS: 3600 },
      limits: {
        maxFrameBytes: 1048576,
        maxConnections: 1024,
        maxInflightPerConnection: 256,
        idleTimeoutS: 300,
        drainTimeoutS: 10,
        maxBufferedBytes: 67108864,
        frameTimeoutS: 10,
      },
      audit: { path: '/var/log/rustfs-kms/audit.log', fsync: 'interval', fsyncIntervalMs: 1000, maxBytes: 104857600 },
      timeoutSecs: 30,
      retryAttempts: 3,
    } satisfies DaemonConfig);
    expect(c.configPath).toBeUndefined();
    expect(c.policy).toBeUndefined();
    expect(c.adminHttp).toBeUndefined();
    expect(c.defaultKeyId).toBeUndefined();
  });

  it('dev defaults live under <cwd>/.kms', () => {
    const c = load({ cli: { dev: true } });
    expect(c.dev).toBe(true);
    expect(c.stateDir).toBe(join(dir, '.kms'));
    expect(c.socket).toEqual({ path: join(dir, '.kms', 'kms.sock'), mode: 0o660 });
    expect(c.root).toEqual({ type: 'local', local: { keyFile: join(dir, '.kms', 'root.key') } });
    expect(c.audit.path).toBe(join(dir, '.kms', 'audit.log'));
    expect(c.keystore.type).toBe('file');
    expect(c.allowUnlockedMemory).toBe(false);
  });

  it('reads the default config file when it exists (production)', () => {
    const file = writeYaml('log_level: debug\n', 'default.yaml');
    const c = load({ defaultConfigPath: file });
    expect(c.logLevel).toBe('debug');
    expect(c.configPath).toBe(file);
  });

  it('a missing default config file is fine', () => {
    expect(load({ defaultConfigPath: join(dir, 'absent.yaml') }).configPath).toBeUndefined();
  });

  it('dev mode does not read the default config file', () => {
    const file = writeYaml('this_key_is_unknown: 1\n', 'default.yaml');
    expect(() => load({ defaultConfigPath: file })).toThrow(ConfigError);
    const c = load({ defaultConfigPath: file, cli: { dev: true } });
    expect(c.configPath).toBeUndefined();
  });

  it('dev mode reads a file named by --config or RUSTFS_KMS_CONFIG', () => {
    const file = writeYaml('log_level: trace\n');
    expect(load({ cli: { dev: true }, configPath: file }).logLevel).toBe('trace');
    expect(load({ cli: { dev: true }, env: { RUSTFS_KMS_CONFIG: file } }).logLevel).toBe('trace');
  });

  it('--config wins over RUSTFS_KMS_CONFIG, which wins over the default file', () => {
    const a = writeYaml('log_level: warn\n', 'a.yaml');
    const b = writeYaml('log_level: error\n', 'b.yaml');
    const d = writeYaml('log_level: fatal\n', 'd.yaml');
    expect(load({ configPath: a, env: { RUSTFS_KMS_CONFIG: b }, defaultConfigPath: d }).logLevel).toBe('warn');
    expect(load({ env: { RUSTFS_KMS_CONFIG: b }, defaultConfigPath: d }).logLevel).toBe('error');
    expect(load({ defaultConfigPath: d }).logLevel).toBe('fatal');
  });

  it('a missing explicitly named config file is an error naming the path', () => {
    const missing = join(dir, 'nope.yaml');
    const e1 = catchConfigError(() => load({ configPath: missing }));
    expect(e1.field).toBe('--config');
    expect(e1.message).toContain(missing);
    expect(e1.message).toContain('no such file');
    const e2 = catchConfigError(() => load({ env: { RUSTFS_KMS_CONFIG: missing } }));
    expect(e2.field).toBe('RUSTFS_KMS_CONFIG');
    expect(e2.message).toContain(missing);
  });

  it('a relative --config resolves against cwd', () => {
    writeYaml('log_level: debug\n', 'rel.yaml');
    const c = load({ configPath: 'rel.yaml' });
    expect(c.configPath).toBe(join(dir, 'rel.yaml'));
    expect(c.logLevel).toBe('debug');
  });

  it('a directory as config file is an error', () => {
    const e = catchConfigError(() => load({ configPath: dir }));
    expect(e.field).toBe('--config');
    expect(e.message).toContain('directory');
  });

  it('an empty or comment-only file gives the defaults', () => {
    const base = load();
    expect(load({ configPath: writeYaml('', 'empty.yaml') })).toEqual({ ...base, configPath: join(dir, 'empty.yaml') });
    expect(load({ configPath: writeYaml('# nothing here\n', 'c.yaml') })).toEqual({ ...base, configPath: join(dir, 'c.yaml') });
  });
});

// ------------------------------------------------------------------------------------------------------

describe('YAML file', () => {
  it('parses the DESIGN §8 example', () => {
    const file = writeYaml(`
state_dir: /var/lib/rustfs-kms
socket: { path: /run/rustfs-kms/kms.sock, mode: "0660", group: rustfs-kms }
root:                     # who wraps key material
  type: local             # local | pkcs11 | vault-transit
  local: { key_file: /var/lib/rustfs-kms/root.key }   # or passphrase_env: RUSTFS_KMS_LOCAL_MASTER_KEY
  pkcs11: { module: /usr/lib/softhsm/libsofthsm2.so, token_label: rustfs-kms, pin_file: /etc/rustfs-kms/pin,
            key_label: rustfs-kms-root, mode: wrap }          # mode: wrap | on-token
  vault: { address: https://vault:8200, namespace: "", transit_mount: transit, transit_key: rustfs-kms,
           auth: { method: approle, role_id_file: /etc/rustfs-kms/role-id, secret_id_file: /etc/rustfs-kms/secret-id },
           tls: { ca_file: /etc/rustfs-kms/vault-ca.pem } }
keystore: { type: file }  # file | vault-kv (kv_mount, prefix, sync_interval_s)
cache: { idle_ttl_s: 300, offline_ttl_s: 3600 }
limits: { max_frame_bytes: 1048576, max_connections: 1024, max_inflight_per_connection: 256 }
audit: { path: /var/log/rustfs-kms/audit.log }
admin_http: { listen: 127.0.0.1:9000, access_key: admin, secret_key_file: /etc/rustfs-kms/admin.secret }  # off unless set
policy: [ { match: { group: rustfs }, allow: [generate_data_key, generate_data_key_batch, decrypt], keys: ["rustfs-*"] } ]
`);
    const c = load({ configPath: file });
    expect(c.configPath).toBe(file);
    expect(c.stateDir).toBe('/var/lib/rustfs-kms');
    expect(c.socket).toEqual({ path: '/run/rustfs-kms/kms.sock', mode: 0o660, group: 'rustfs-kms' });
    expect(c.root.type).toBe('local');
    expect(c.root.local).toEqual({ keyFile: '/var/lib/rustfs-kms/root.key' });
    expect(c.root.pkcs11).toEqual({
      module: '/usr/lib/softhsm/libsofthsm2.so',
      tokenLabel: 'rustfs-kms',
      pinFile: '/etc/rustfs-kms/pin',
      keyLabel: 'rustfs-kms-root',
      mode: 'wrap',
      sessions: 4,
    });
    expect(c.root.vault).toEqual({
      address: 'https://vault:8200',
      namespace: '',
      transitMount: 'transit',
      transitKey: 'rustfs-kms',
      kvMount: 'secret',
      auth: {
        method: 'approle',
        roleIdFile: '/etc/rustfs-kms/role-id',
        secretIdFile: '/etc/rustfs-kms/secret-id',
        mount: 'approle',
      },
      tls: { caFile: '/etc/rustfs-kms/vault-ca.pem' },
    });
    expect(c.keystore).toEqual({ type: 'file', kvMount: 'secret', prefix: 'rustfs-kms', syncIntervalS: 10 });
    expect(c.cache).toEqual({ idleTtlS: 300, offlineTtlS: 3600 });
    expect(c.limits).toEqual({
      maxFrameBytes: 1048576,
      maxConnections: 1024,
      maxInflightPerConnection: 256,
      idleTimeoutS: 300,
      drainTimeoutS: 10,
      maxBufferedBytes: 67108864,
      frameTimeoutS: 10,
    });
    expect(c.audit.path).toBe('/var/log/rustfs-kms/audit.log');
    expect(c.adminHttp).toEqual({
      listen: '127.0.0.1:9000',
      accessKey: 'admin',
      secretKeyFile: '/etc/rustfs-kms/admin.secret',
      region: 'us-east-1',
      maxConnections: 128,
      maxConnectionsPerSource: 64,
    });
    expect(c.policy).toEqual([
      { match: { group: 'rustfs' }, allow: ['generate_data_key', 'generate_data_key_batch', 'decrypt'], keys: ['rustfs-*'] },
    ]);
  });

  it('parses the full example in docs/configuration.md', () => {
    const doc = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');
    const section = doc.slice(doc.indexOf('## Full example'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml).toBeDefined();
    const c = configFromYaml(yaml ?? '');
    expect(c.root.type).toBe('vault-transit');
    expect(c.keystore.type).toBe('vault-kv');
    expect(c.root.vault?.address).toBe('https://vault.internal:8200');
    expect(c.policy).toHaveLength(1);
  });

  it('parses every field', () => {
    const c = configFromYaml(
      `
state_dir: /srv/kms
log_level: warn
allow_unlocked_memory: true
default_key_id: rustfs-default
timeout_secs: 12
retry_attempts: 5
hardening: { mlockall: false }
socket: { path: /srv/kms/s.sock, mode: "0600", group: "1001" }
root:
  type: vault-transit
  local: { key_file: /srv/kms/root.key, passphrase_env: MY_PASSPHRASE }
  vault:
    address: https://vault.example.com:8200/
    namespace: admin/storage
    transit_mount: kms/transit
    transit_key: node-root
    kv_mount: kv
    auth: { method: kubernetes, role: rustfs-kms, mount: k8s }
    tls: { ca_file: /etc/ca.pem, cert_file: /etc/client.pem, key_file: /etc/client.key, server_name: vault.internal }
keystore: { type: vault-kv, prefix: clusters/a, sync_interval_s: 30 }
cache: { idle_ttl_s: 60, offline_ttl_s: 0 }
limits: { max_frame_bytes: 65536, max_connections: 16, max_inflight_per_connection: 8, idle_timeout_s: 0, drain_timeout_s: 3, max_buffered_bytes: 1048576, frame_timeout_s: 5 }
audit: { path: /srv/kms/audit.log, fsync: always, fsync_interval_ms: 50, max_bytes: 0 }
admin_http: { listen: "[::1]:9443", access_key: ops-admin, secret_key_file: /srv/kms/admin.secret, region: eu-west-1, max_connections: 32 }
policy:
  - { match: { uid: 0 }, allow: ["*"] }
  - { match: { user: backup }, allow: [decrypt, describe_key], keys: [backup-*, "archive-??"] }
  - { match: { gid: 2000 }, allow: [health] }
  - { match: { access_key: ops-admin }, allow: [list_keys, create_key, rotate_key] }
`,
      { baseDir: dir, configPath: '/srv/kms/config.yaml', env: { MY_PASSPHRASE: 'x' } },
    );
    expect(c).toEqual({
      configPath: '/srv/kms/config.yaml',
      dev: false,
      allowUnlockedMemory: true,
      logLevel: 'warn',
      stateDir: '/srv/kms',
      socket: { path: '/srv/kms/s.sock', mode: 0o600, group: '1001' },
      root: {
        type: 'vault-transit',
        local: { keyFile: '/srv/kms/root.key', passphraseEnv: 'MY_PASSPHRASE' },
        vault: {
          address: 'https://vault.example.com:8200',
          namespace: 'admin/storage',
          transitMount: 'kms/transit',
          transitKey: 'node-root',
          kvMount: 'kv',
          auth: {
            method: 'kubernetes',
            role: 'rustfs-kms',
            jwtFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
            mount: 'k8s',
          },
          tls: { caFile: '/etc/ca.pem', certFile: '/etc/client.pem', keyFile: '/etc/client.key', serverName: 'vault.internal' },
        },
      },
      keystore: { type: 'vault-kv', kvMount: 'kv', prefix: 'clusters/a', syncIntervalS: 30 },
      cache: { idleTtlS: 60, offlineTtlS: 0 },
      limits: { maxFrameBytes: 65536, maxConnections: 16, maxInflightPerConnection: 8, idleTimeoutS: 0, drainTimeoutS: 3, maxBufferedBytes: 1048576, frameTimeoutS: 5 },
      audit: { path: '/srv/kms/audit.log', fsync: 'always', fsyncIntervalMs: 50, maxBytes: 0 },
      adminHttp: {
        listen: '[::1]:9443', accessKey: 'ops-admin', secretKeyFile: '/srv/kms/admin.secret', region: 'eu-west-1',
        maxConnections: 32, maxConnectionsPerSource: 32,
      },
      policy: [
        { match: { uid: 0 }, allow: ['*'], keys: ['*'] },
        { match: { user: 'backup' }, allow: ['decrypt', 'describe_key'], keys: ['backup-*', 'archive-??'] },
        { match: { gid: 2000 }, allow: ['health'], keys: ['*'] },
        { match: { accessKey: 'ops-admin' }, allow: ['list_keys', 'create_key', 'rotate_key'], keys: ['*'] },
      ],
      defaultKeyId: 'rustfs-default',
      timeoutSecs: 12,
      retryAttempts: 5,
    } satisfies DaemonConfig);
  });

  it('pkcs11 root with token serial, pin_env, on-token mode', () => {
    const c = configFromYaml(
      `root: { type: pkcs11, pkcs11: { module: /usr/lib/p11.so, token_serial: "a1b2c3", pin_env: HSM_PIN, mode: on-token, sessions: 8, key_label: k } }`,
      { env: { HSM_PIN: '1234' } },
    );
    expect(c.root.type).toBe('pkcs11');
    expect(c.root.pkcs11).toEqual({ module: '/usr/lib/p11.so', tokenSerial: 'a1b2c3', pinEnv: 'HSM_PIN', keyLabel: 'k', mode: 'on-token', sessions: 8 });
  });

  it('vault token auth from token_file; vault-kv keystore over a local root', () => {
    const c = configFromYaml(`
root:
  vault: { address: "http://127.0.0.1:8200", auth: { method: token, token_file: /run/secrets/vault-token } }
keystore: { type: vault-kv, kv_mount: kv2 }
`);
    expect(c.root.type).toBe('local');
    expect(c.keystore).toEqual({ type: 'vault-kv', kvMount: 'kv2', prefix: 'rustfs-kms', syncIntervalS: 10 });
    expect(c.root.vault?.auth).toEqual({ method: 'token', tokenFile: '/run/secrets/vault-token' });
    expect(c.root.vault?.kvMount).toBe('kv2');
  });

  it('approle and kubernetes mounts default', () => {
    const approle = configFromYaml(
      `root: { type: vault-transit, vault: { address: "https://v:8200", auth: { method: approle, role_id_file: /a, secret_id_file: /b } } }`,
    );
    expect(approle.root.vault?.auth).toEqual({ method: 'approle', roleIdFile: '/a', secretIdFile: '/b', mount: 'approle' });
    const k8s = configFromYaml(
      `root: { type: vault-transit, vault: { address: "https://v:8200", auth: { method: kubernetes, role: r, jwt_file: /jwt } } }`,
    );
    expect(k8s.root.vault?.auth).toEqual({ method: 'kubernetes', role: 'r', jwtFile: '/jwt', mount: 'kubernetes' });
  });

  it('null (empty) values and sections count as absent', () => {
    const c = configFromYaml('cache:\nlimits:\n  max_connections:\npolicy:\nlog_level: ~\n');
    const base = configFromYaml('');
    expect(c).toEqual(base);
  });

  it('socket.group "" keeps the daemon group; a numeric gid is accepted', () => {
    expect(configFromYaml('socket: { group: "" }').socket.group).toBeUndefined();
    expect(configFromYaml('socket: { group: 1001 }').socket.group).toBe('1001');
    expect(configFromYaml('socket: { group: storage }').socket.group).toBe('storage');
  });

  it('socket.mode accepts three-digit octal strings', () => {
    expect(configFromYaml('socket: { mode: "600" }').socket.mode).toBe(0o600);
    expect(configFromYaml('socket: { mode: "0666" }').socket.mode).toBe(0o666);
  });

  it('anchors and aliases work', () => {
    const c = configFromYaml(`
policy:
  - { match: { group: a }, allow: &ops [decrypt, encrypt] }
  - { match: { group: b }, allow: *ops }
`);
    expect(c.policy?.[1]?.allow).toEqual(['decrypt', 'encrypt']);
  });

  it('rejects duplicate keys', () => {
    const e = yamlError('log_level: info\nlog_level: debug\n', { sourceName: '/etc/rustfs-kms/config.yaml' });
    expect(e.message).toContain('invalid YAML');
    expect(e.message).toContain('unique');
    expect(e.field).toBe('/etc/rustfs-kms/config.yaml');
  });

  it('rejects custom and non-core tags', () => {
    expect(yamlError('log_level: !env LEVEL\n').message).toMatch(/tags outside the YAML 1.2 core schema/);
    expect(yamlError('state_dir: !!binary aGVsbG8=\n').message).toMatch(/tags outside/);
    expect(yamlError('cache: !!set { a }\n').message).toMatch(/tags outside/);
  });

  it('rejects YAML 1.1 merge keys as unknown keys', () => {
    const e = yamlError('base: &b { idle_ttl_s: 5 }\n');
    expect(e.field).toBe('base');
    const e2 = yamlError('cache: { <<: { idle_ttl_s: 5 } }\n');
    expect(e2.field).toBe('cache.<<');
  });

  it('rejects several documents, syntax errors and a non-mapping document', () => {
    expect(yamlError('log_level: info\n---\nlog_level: debug\n').message).toContain('invalid YAML');
    expect(yamlError('socket: { path: /x\n').message).toContain('invalid YAML');
    const e = yamlError('- log_level\n');
    expect(e.field).toBe('(top level)');
    expect(e.message).toContain('got a list');
  });

  it('rejects excessive alias expansion', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 6; i++) {
      const refs = Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ');
      lines.push(`a${i}: &a${i} [${refs}]`);
    }
    const e = yamlError(`${lines.join('\n')}\n`);
    expect(e.message).toMatch(/aliases|too large/);
  });

  it('unknown keys anywhere are errors that name the path and list the allowed keys', () => {
    const cases: Array<[string, string, string]> = [
      ['stat_dir: /x\n', 'stat_dir', 'state_dir'],
      ['limits: { max_conections: 5 }\n', 'limits.max_conections', 'max_connections'],
      ['socket: { perms: "0660" }\n', 'socket.perms', 'mode'],
      ['root: { local: { keyfile: /x } }\n', 'root.local.keyfile', 'key_file'],
      ['root: { vault: { adress: "https://v" } }\n', 'root.vault.adress', 'address'],
      ['root: { vault: { tls: { ca: /x } } }\n', 'root.vault.tls.ca', 'ca_file'],
      ['root: { pkcs11: { modul: /x } }\n', 'root.pkcs11.modul', 'module'],
      ['keystore: { kvmount: x }\n', 'keystore.kvmount', 'kv_mount'],
      ['cache: { ttl: 5 }\n', 'cache.ttl', 'idle_ttl_s'],
      ['audit: { file: /x }\n', 'audit.file', 'path'],
      ['hardening: { mlock: true }\n', 'hardening.mlock', 'mlockall'],
      ['admin_http: { port: 9000 }\n', 'admin_http.port', 'listen'],
      ['policy: [ { match: { uid: 0 }, allow: ["*"], key: [a] } ]\n', 'policy[0].key', 'keys'],
      ['policy: [ { match: { pid: 1 }, allow: ["*"] } ]\n', 'policy[0].match.pid', 'access_key'],
      ['dev: true\n', 'dev', 'allow_unlocked_memory'],
    ];
    for (const [text, field, listed] of cases) {
      const e = yamlError(text);
      expect(e.field, text).toBe(field);
      expect(e.message, text).toContain('unknown key');
      expect(e.message, text).toContain(listed);
    }
  });

  it('error messages carry the file and line of the offending value', () => {
    const file = writeYaml('log_level: info\nsocket:\n  mode: "abc"\n');
    const e = catchConfigError(() => load({ configPath: file }));
    expect(e.message).toBe(`config: socket.mode: expected an octal mode string like "0660", got "abc" (${file}:3:9)`);
    expect(e.location).toBe(`${file}:3:9`);
  });

  it('secrets are refused inline with a pointer to the file/env alternative', () => {
    const t = yamlError('root: { vault: { auth: { method: token, token: hvs.abc } } }\n');
    expect(t.field).toBe('root.vault.auth.token');
    expect(t.message).toContain('token_file');
    expect(t.message).not.toContain('hvs.abc');
    const p = yamlError('root: { pkcs11: { module: /m.so, pin: "1234" } }\n');
    expect(p.field).toBe('root.pkcs11.pin');
    expect(p.message).toContain('pin_file');
    const s = yamlError('admin_http: { listen: "127.0.0.1:9000", access_key: a12, secret_key: s }\n');
    expect(s.field).toBe('admin_http.secret_key');
    expect(s.message).toContain('secret_key_file');
    const l = yamlError('root: { local: { passphrase: hunter2 } }\n');
    expect(l.field).toBe('root.local.passphrase');
    expect(l.message).toContain('passphrase_env');
  });
});

// ------------------------------------------------------------------------------------------------------

describe('bad values', () => {
  const cases: Array<{ name: string; yaml: string; field: string; expect: RegExp; env?: Record<string, string> }> = [
    { name: 'mode not octal', yaml: 'socket: { mode: abc }', field: 'socket.mode', expect: /expected an octal mode string like "0660", got "abc"/ },
    { name: 'mode has 9', yaml: 'socket: { mode: "0690" }', field: 'socket.mode', expect: /octal mode/ },
    { name: 'mode with setuid bits', yaml: 'socket: { mode: "4755" }', field: 'socket.mode', expect: /octal mode/ },
    { name: 'mode unquoted', yaml: 'socket: { mode: 0660 }', field: 'socket.mode', expect: /in quotes.*got 660/ },
    { name: 'frame too small', yaml: 'limits: { max_frame_bytes: 1023 }', field: 'limits.max_frame_bytes', expect: /from 1024 to 16777216, got 1023/ },
    { name: 'frame too large', yaml: 'limits: { max_frame_bytes: 16777217 }', field: 'limits.max_frame_bytes', expect: /from 1024 to 16777216/ },
    { name: 'connections 0', yaml: 'limits: { max_connections: 0 }', field: 'limits.max_connections', expect: /from 1 to/ },
    { name: 'inflight negative', yaml: 'limits: { max_inflight_per_connection: -1 }', field: 'limits.max_inflight_per_connection', expect: /from 1 to/ },
    { name: 'idle timeout fraction', yaml: 'limits: { idle_timeout_s: 1.5 }', field: 'limits.idle_timeout_s', expect: /integer/ },
    { name: 'drain string', yaml: 'limits: { drain_timeout_s: "10" }', field: 'limits.drain_timeout_s', expect: /got "10"/ },
    { name: 'buffered bytes string', yaml: 'limits: { max_buffered_bytes: 64M }', field: 'limits.max_buffered_bytes', expect: /got "64M"/ },
    { name: 'buffered bytes below one frame', yaml: 'limits: { max_frame_bytes: 65536, max_buffered_bytes: 65535 }', field: 'limits.max_buffered_bytes', expect: /at least limits.max_frame_bytes \(65536\), got 65535/ },
    { name: 'frame timeout 0', yaml: 'limits: { frame_timeout_s: 0 }', field: 'limits.frame_timeout_s', expect: /from 1 to 3600/ },
    { name: 'cache ttl huge', yaml: 'cache: { idle_ttl_s: 99999999 }', field: 'cache.idle_ttl_s', expect: /from 0 to/ },
    { name: 'offline ttl string', yaml: 'cache: { offline_ttl_s: 1h }', field: 'cache.offline_ttl_s', expect: /got "1h"/ },
    { name: 'sync interval 0', yaml: 'keystore: { sync_interval_s: 0 }', field: 'keystore.sync_interval_s', expect: /from 1 to 3600/ },
    { name: 'timeout 0', yaml: 'timeout_secs: 0', field: 'timeout_secs', expect: /from 1 to 3600/ },
    { name: 'retries 21', yaml: 'retry_attempts: 21', field: 'retry_attempts', expect: /from 0 to 20/ },
    { name: 'audit fsync', yaml: 'audit: { fsync: sometimes }', field: 'audit.fsync', expect: /one of always, interval, never/ },
    { name: 'audit interval 0', yaml: 'audit: { fsync_interval_ms: 0 }', field: 'audit.fsync_interval_ms', expect: /from 1 to/ },
    { name: 'audit max_bytes tiny', yaml: 'audit: { max_bytes: 10 }', field: 'audit.max_bytes', expect: /0 \(never rotate\)/ },
    { name: 'log level', yaml: 'log_level: verbose', field: 'log_level', expect: /one of fatal, error, warn, info, debug, trace/ },
    { name: 'mlockall yes', yaml: 'hardening: { mlockall: yes }', field: 'hardening.mlockall', expect: /false or nothing, got "yes"/ },
    { name: 'mlockall true (removed)', yaml: 'hardening: { mlockall: true }', field: 'hardening.mlockall', expect: /was removed: .*madvise\(MADV_DONTNEED\)/ },
    { name: 'allow_unlocked_memory string', yaml: 'allow_unlocked_memory: "true"', field: 'allow_unlocked_memory', expect: /true or false/ },
    { name: 'unknown root type', yaml: 'root: { type: hsm }', field: 'root.type', expect: /one of local, pkcs11, vault-transit, aws-kms, gcp-kms, azure-keyvault, got "hsm"/ },
    { name: 'unknown keystore type', yaml: 'keystore: { type: s3 }', field: 'keystore.type', expect: /one of file, vault-kv/ },
    { name: 'bad default key id', yaml: 'default_key_id: "-bad"', field: 'default_key_id', expect: /key id matching/ },
    { name: 'numeric default key id unquoted', yaml: 'default_key_id: 2024', field: 'default_key_id', expect: /put it in quotes/ },
    { name: 'policy unknown op', yaml: 'policy: [ { match: { uid: 0 }, allow: [decrypt, delete_everything] } ]', field: 'policy[0].allow[1]', expect: /operation name \(health, status.*re_encrypt, configure.*kms:CreateKey.*kms:Restore\) or "\*", got "delete_everything"/ },
    { name: 'policy two match fields', yaml: 'policy: [ { match: { uid: 0, gid: 0 }, allow: ["*"] } ]', field: 'policy[0].match', expect: /exactly one of uid, user, gid, group, access_key, got uid, gid/ },
    { name: 'policy no match', yaml: 'policy: [ { allow: ["*"] } ]', field: 'policy[0].match', expect: /exactly one of .* got none/ },
    { name: 'policy empty allow', yaml: 'policy: [ { match: { uid: 0 }, allow: [] } ]', field: 'policy[0].allow', expect: /non-empty list/ },
    { name: 'policy bad glob', yaml: 'policy: [ { match: { uid: 0 }, allow: ["*"], keys: ["a/b"] } ]', field: 'policy[0].keys[0]', expect: /glob/ },
    { name: 'policy empty list', yaml: 'policy: []', field: 'policy', expect: /at least one rule/ },
    { name: 'policy not a list', yaml: 'policy: { match: { uid: 0 } }', field: 'policy', expect: /a list of rules/ },
    { name: 'policy uid negative', yaml: 'policy: [ { match: { uid: -1 }, allow: ["*"] } ]', field: 'policy[0].match.uid', expect: /numeric uid/ },
    { name: 'policy group with space', yaml: 'policy: [ { match: { group: "10 0" }, allow: ["*"] } ]', field: 'policy[0].match.group', expect: /group name/ },
    { name: 'policy numeric group', yaml: 'policy: [ { match: { group: 1000 } , allow: ["*"] } ]', field: 'policy[0].match.group', expect: /use gid for a numeric id\), got 1000/ },
    { name: 'policy numeric user string', yaml: 'policy: [ { match: { user: "0" } , allow: ["*"] } ]', field: 'policy[0].match.user', expect: /use uid/ },
    { name: 'vault address scheme', yaml: 'root: { vault: { address: "vault:8200" } }', field: 'root.vault.address', expect: /http\(s\) URL/ },
    { name: 'vault address query', yaml: 'root: { vault: { address: "https://v?x=1" } }', field: 'root.vault.address', expect: /query/ },
    { name: 'vault auth method', yaml: 'root: { vault: { address: "https://v", auth: { method: ldap } } }', field: 'root.vault.auth.method', expect: /one of token, approle, kubernetes/ },
    { name: 'vault auth method missing', yaml: 'root: { vault: { address: "https://v", auth: { token_file: /t } } }', field: 'root.vault.auth.method', expect: /required/ },
    { name: 'vault auth key for another method', yaml: 'root: { vault: { address: "https://v", auth: { method: token, role: r } } }', field: 'root.vault.auth.role', expect: /not used by method token; expected one of method, token_file/ },
    { name: 'approle without secret id', yaml: 'root: { vault: { address: "https://v", auth: { method: approle, role_id_file: /r } } }', field: 'root.vault.auth.secret_id_file', expect: /required for method approle/ },
    { name: 'kubernetes without role', yaml: 'root: { vault: { address: "https://v", auth: { method: kubernetes } } }', field: 'root.vault.auth.role', expect: /required for method kubernetes/ },
    { name: 'tls cert without key', yaml: 'root: { vault: { address: "https://v", tls: { cert_file: /c } } }', field: 'root.vault.tls.key_file', expect: /go together/ },
    { name: 'transit mount slash', yaml: 'root: { vault: { address: "https://v", transit_mount: /transit/ } }', field: 'root.vault.transit_mount', expect: /mount path/ },
    { name: 'kv prefix leading slash', yaml: 'keystore: { prefix: /p }', field: 'keystore.prefix', expect: /prefix/ },
    { name: 'pkcs11 without module', yaml: 'root: { pkcs11: { token_label: t, pin_file: /p } }', field: 'root.pkcs11.module', expect: /required/ },
    { name: 'pkcs11 without token', yaml: 'root: { pkcs11: { module: /m.so, pin_file: /p } }', field: 'root.pkcs11.token_label', expect: /token_label or token_serial/ },
    { name: 'pkcs11 without pin', yaml: 'root: { pkcs11: { module: /m.so, token_label: t } }', field: 'root.pkcs11.pin_file', expect: /pin_file or pin_env/ },
    { name: 'pkcs11 two pins', yaml: 'root: { pkcs11: { module: /m.so, token_label: t, pin_file: /p, pin_env: P } }', field: 'root.pkcs11.pin_file', expect: /exactly one of pin_file or pin_env, got both/ },
    { name: 'pkcs11 mode', yaml: 'root: { pkcs11: { module: /m.so, token_label: t, pin_file: /p, mode: fast } }', field: 'root.pkcs11.mode', expect: /one of wrap, on-token/ },
    { name: 'pkcs11 sessions', yaml: 'root: { pkcs11: { module: /m.so, token_label: t, pin_file: /p, sessions: 0 } }', field: 'root.pkcs11.sessions', expect: /from 1 to 256/ },
    { name: 'passphrase_env name', yaml: 'root: { local: { passphrase_env: "my var" } }', field: 'root.local.passphrase_env', expect: /environment variable name/ },
    { name: 'admin listen', yaml: 'admin_http: { listen: "9000", access_key: adm, secret_key_file: /s }', field: 'admin_http.listen', expect: /host:port/ },
    { name: 'admin listen port', yaml: 'admin_http: { listen: "127.0.0.1:70000", access_key: adm, secret_key_file: /s }', field: 'admin_http.listen', expect: /port 1 to 65535/ },
    { name: 'admin missing key', yaml: 'admin_http: { listen: "127.0.0.1:9000", secret_key_file: /s }', field: 'admin_http.access_key', expect: /required when admin_http is set/ },
    { name: 'admin access key short', yaml: 'admin_http: { listen: "127.0.0.1:9000", access_key: a, secret_key_file: /s }', field: 'admin_http.access_key', expect: /3 to 128/ },
    { name: 'admin max connections', yaml: 'admin_http: { listen: "127.0.0.1:9000", access_key: adm, secret_key_file: /s, max_connections: 0 }', field: 'admin_http.max_connections', expect: /from 1 to 65536, got 0/ },
    { name: 'admin per-source above total', yaml: 'admin_http: { listen: "127.0.0.1:9000", access_key: adm, secret_key_file: /s, max_connections: 10, max_connections_per_source: 11 }', field: 'admin_http.max_connections_per_source', expect: /from 1 to admin_http.max_connections \(10\), got 11/ },
    { name: 'section not a mapping', yaml: 'limits: 5', field: 'limits', expect: /a mapping with keys max_frame_bytes/ },
    { name: 'path not a string', yaml: 'state_dir: [a]', field: 'state_dir', expect: /file system path, got a list/ },
    { name: 'kv mounts disagree', yaml: 'keystore: { kv_mount: a }\nroot: { vault: { address: "https://v", kv_mount: b, auth: { method: token, token_file: /t } } }', field: 'keystore.kv_mount', expect: /same mount as root.vault.kv_mount/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const e = yamlError(`${c.yaml}\n`, c.env ? { env: c.env } : {});
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.field).toBe(c.field);
      expect(e.message.startsWith(`config: ${c.field}: `)).toBe(true);
      expect(e.message).toMatch(c.expect);
    });
  }

  it('ConfigError carries field and expected', () => {
    const e = yamlError('socket: { mode: abc }\n');
    expect(e.name).toBe('ConfigError');
    expect(e).toBeInstanceOf(Error);
    expect(e.field).toBe('socket.mode');
    expect(e.expected).toBe('an octal mode string like "0660"');
    expect(e.message).toBe('config: socket.mode: expected an octal mode string like "0660", got "abc" (line 1, column 17)');
  });
});

// ------------------------------------------------------------------------------------------------------

describe('cross-field requirements', () => {
  it('vault-transit root needs root.vault.address', () => {
    const e = yamlError('root: { type: vault-transit }\n');
    expect(e.field).toBe('root.vault.address');
    expect(e.message).toMatch(/required when root.type is vault-transit/);
  });

  it('vault-kv keystore needs root.vault.address', () => {
    const e = yamlError('keystore: { type: vault-kv }\n');
    expect(e.field).toBe('root.vault.address');
    expect(e.message).toMatch(/required when keystore.type is vault-kv/);
  });

  it('RUSTFS_KMS_TYPE=vault without an address names the source', () => {
    const e = envError({ RUSTFS_KMS_TYPE: 'vault', RUSTFS_KMS_VAULT_TOKEN: 't' });
    expect(e.field).toBe('root.vault.address');
    expect(e.message).toContain('set by RUSTFS_KMS_TYPE');
    expect(e.message).toContain('RUSTFS_KMS_VAULT_ADDRESS');
  });

  it('a vault in use needs auth, and token auth needs a token', () => {
    const noAuth = yamlError('root: { type: vault-transit, vault: { address: "https://v" } }\n');
    expect(noAuth.field).toBe('root.vault.auth');
    const noToken = yamlError('root: { type: vault-transit, vault: { address: "https://v", auth: { method: token } } }\n');
    expect(noToken.field).toBe('root.vault.auth');
    expect(noToken.message).toMatch(/token_file or RUSTFS_KMS_VAULT_TOKEN/);
    // ...which the environment can supply.
    const c = configFromYaml('root: { type: vault-transit, vault: { address: "https://v", auth: { method: token } } }\n', {
      env: { RUSTFS_KMS_VAULT_TOKEN: 'hvs.x' },
    });
    expect(c.root.vault?.auth).toEqual({ method: 'token', token: 'hvs.x' });
  });

  it('a vault section that is not in use and incomplete is left out', () => {
    expect(configFromYaml('root: { vault: { namespace: ns } }\n').root.vault).toBeUndefined();
    expect(load({ env: { RUSTFS_KMS_VAULT_ADDRESS: 'https://v' } }).root.vault).toBeUndefined();
  });

  it('pkcs11 root needs a pkcs11 section', () => {
    const e = yamlError('root: { type: pkcs11 }\n');
    expect(e.field).toBe('root.pkcs11');
    expect(e.message).toMatch(/module, token_label or token_serial, and pin_file or pin_env/);
  });

  it('pin_env and passphrase_env must name a variable that is set', () => {
    const pin = yamlError('root: { type: pkcs11, pkcs11: { module: /m.so, token_label: t, pin_env: HSM_PIN } }\n');
    expect(pin.field).toBe('root.pkcs11.pin_env');
    expect(pin.message).toContain('HSM_PIN');
    const pass = yamlError('root: { local: { passphrase_env: MY_PASS } }\n');
    expect(pass.field).toBe('root.local.passphrase_env');
    expect(pass.message).toContain('MY_PASS');
    expect(configFromYaml('root: { local: { passphrase_env: MY_PASS } }\n', { env: { MY_PASS: 'p' } }).root.local.passphraseEnv).toBe('MY_PASS');
  });

  it('keystore.kv_mount and root.vault.kv_mount fall back to each other', () => {
    const vaultYaml = 'root: { type: vault-transit, vault: { address: "https://v", auth: { method: token, token_file: /t }, kv_mount: kvv } }\n';
    const c = configFromYaml(`${vaultYaml}keystore: { type: vault-kv }\n`);
    expect(c.keystore.kvMount).toBe('kvv');
    expect(c.root.vault?.kvMount).toBe('kvv');
  });
});

// ------------------------------------------------------------------------------------------------------

describe('precedence: defaults < YAML < environment < command line', () => {
  it('state_dir', () => {
    const file = writeYaml('state_dir: /yaml/state\n');
    expect(load({ configPath: file }).stateDir).toBe('/yaml/state');
    expect(load({ configPath: file, env: { RUSTFS_KMS_STATE_DIR: '/env/state' } }).stateDir).toBe('/env/state');
    expect(
      load({ configPath: file, env: { RUSTFS_KMS_STATE_DIR: '/env/state' }, cli: { stateDir: '/cli/state' } }).stateDir,
    ).toBe('/cli/state');
  });

  it('socket path', () => {
    const file = writeYaml('socket: { path: /yaml/kms.sock }\n');
    expect(load({ configPath: file }).socket.path).toBe('/yaml/kms.sock');
    expect(load({ configPath: file, env: { RUSTFS_KMS_SOCKET: '/env/kms.sock' } }).socket.path).toBe('/env/kms.sock');
    expect(load({ configPath: file, env: { RUSTFS_KMS_SOCKET: '/env/kms.sock' }, cli: { socket: '/cli/kms.sock' } }).socket.path).toBe(
      '/cli/kms.sock',
    );
  });

  it('log level, timeout, retries and default key id: env over YAML', () => {
    const file = writeYaml('log_level: warn\ntimeout_secs: 5\nretry_attempts: 1\ndefault_key_id: yaml-key\n');
    const fromYaml = load({ configPath: file });
    expect([fromYaml.logLevel, fromYaml.timeoutSecs, fromYaml.retryAttempts, fromYaml.defaultKeyId]).toEqual(['warn', 5, 1, 'yaml-key']);
    const fromEnv = load({
      configPath: file,
      env: {
        RUSTFS_KMS_LOG_LEVEL: 'debug',
        RUSTFS_KMS_TIMEOUT_SECS: '60',
        RUSTFS_KMS_RETRY_ATTEMPTS: '0',
        RUSTFS_KMS_DEFAULT_KEY_ID: 'env-key',
      },
    });
    expect([fromEnv.logLevel, fromEnv.timeoutSecs, fromEnv.retryAttempts, fromEnv.defaultKeyId]).toEqual(['debug', 60, 0, 'env-key']);
  });

  it('root type: RUSTFS_KMS_TYPE over YAML', () => {
    const file = writeYaml(
      'root: { type: vault-transit, vault: { address: "https://v", auth: { method: token, token_file: /t } } }\nkeystore: { type: vault-kv }\n',
    );
    const c = load({ configPath: file, env: { RUSTFS_KMS_TYPE: 'local' } });
    expect(c.root.type).toBe('local');
    expect(c.keystore.type).toBe('file');
  });

  it('vault settings: env over YAML, the env token replacing the file auth', () => {
    const file = writeYaml(`
root:
  type: vault-transit
  vault: { address: "https://yaml:8200", namespace: yaml-ns, auth: { method: approle, role_id_file: /r, secret_id_file: /s } }
`);
    const c = load({
      configPath: file,
      env: { RUSTFS_KMS_VAULT_ADDRESS: 'https://env:8200', RUSTFS_KMS_VAULT_NAMESPACE: 'env-ns', RUSTFS_KMS_VAULT_TOKEN: 'hvs.env' },
    });
    expect(c.root.vault?.address).toBe('https://env:8200');
    expect(c.root.vault?.namespace).toBe('env-ns');
    expect(c.root.vault?.auth).toEqual({ method: 'token', token: 'hvs.env' });
  });

  it('allow_unlocked_memory: YAML < env < --allow-unlocked-memory; an absent flag changes nothing', () => {
    const on = writeYaml('allow_unlocked_memory: true\n', 'on.yaml');
    const off = writeYaml('allow_unlocked_memory: false\n', 'off.yaml');
    expect(load({ configPath: on }).allowUnlockedMemory).toBe(true);
    expect(load({ configPath: on, env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: '0' } }).allowUnlockedMemory).toBe(false);
    expect(load({ configPath: off, env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: 'true' } }).allowUnlockedMemory).toBe(true);
    expect(load({ configPath: off, env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: 'false' }, cli: { allowUnlockedMemory: true } }).allowUnlockedMemory).toBe(true);
    expect(load({ configPath: on, cli: { allowUnlockedMemory: false } }).allowUnlockedMemory).toBe(true);
  });

  it('YAML values override dev defaults', () => {
    const file = writeYaml('state_dir: /yaml/dev\n');
    const c = load({ cli: { dev: true }, configPath: file });
    expect(c.stateDir).toBe('/yaml/dev');
    expect(c.socket.path).toBe('/yaml/dev/kms.sock');
  });
});

// ------------------------------------------------------------------------------------------------------

describe('environment variables', () => {
  it('RUSTFS_KMS_TYPE=local', () => {
    const c = load({ env: { RUSTFS_KMS_TYPE: 'local' } });
    expect(c.root.type).toBe('local');
    expect(c.keystore.type).toBe('file');
  });

  it('RUSTFS_KMS_TYPE=vault with address, token and namespace', () => {
    const c = load({
      env: {
        RUSTFS_KMS_TYPE: 'vault',
        RUSTFS_KMS_VAULT_ADDRESS: 'https://vault.example.com:8200/',
        RUSTFS_KMS_VAULT_TOKEN: 'hvs.CAESIJ',
        RUSTFS_KMS_VAULT_NAMESPACE: 'admin',
      },
    });
    expect(c.root.type).toBe('vault-transit');
    expect(c.keystore.type).toBe('vault-kv');
    expect(c.root.vault).toEqual({
      address: 'https://vault.example.com:8200',
      namespace: 'admin',
      transitMount: 'transit',
      transitKey: 'rustfs-kms',
      kvMount: 'secret',
      auth: { method: 'token', token: 'hvs.CAESIJ' },
      tls: {},
    });
  });

  it('a bad RUSTFS_KMS_TYPE names the variable and the allowed values', () => {
    const e = envError({ RUSTFS_KMS_TYPE: 'vault-transit' });
    expect(e.field).toBe('RUSTFS_KMS_TYPE');
    expect(e.message).toBe('config: RUSTFS_KMS_TYPE: expected one of local, vault, aws, aws-kms, azure, gcp, got "vault-transit"');
  });

  it('RUSTFS_KMS_VAULT_ADDRESS must be an http(s) URL; credentials in it are not echoed', () => {
    expect(envError({ RUSTFS_KMS_VAULT_ADDRESS: 'vault:8200' }).field).toBe('RUSTFS_KMS_VAULT_ADDRESS');
    expect(envError({ RUSTFS_KMS_VAULT_ADDRESS: 'ftp://vault' }).message).toMatch(/http\(s\) URL/);
    const e = envError({ RUSTFS_KMS_VAULT_ADDRESS: 'https://root:s3cret@vault:8200' });
    expect(e.message).not.toContain('s3cret');
    expect(load({ env: { RUSTFS_KMS_VAULT_ADDRESS: 'http://127.0.0.1:8200' } }).root.vault).toBeUndefined(); // not in use
  });

  it('RUSTFS_KMS_VAULT_TOKEN: empty or with whitespace is an error that does not echo the value', () => {
    expect(envError({ RUSTFS_KMS_VAULT_TOKEN: '' }).field).toBe('RUSTFS_KMS_VAULT_TOKEN');
    const e = envError({ RUSTFS_KMS_VAULT_TOKEN: 'hvs.abc def' });
    expect(e.field).toBe('RUSTFS_KMS_VAULT_TOKEN');
    expect(e.message).not.toContain('hvs.abc');
  });

  it('RUSTFS_KMS_VAULT_NAMESPACE: empty means the root namespace and overrides the file', () => {
    const file = writeYaml('root: { type: vault-transit, vault: { address: "https://v", namespace: team, auth: { method: token, token_file: /t } } }\n');
    expect(load({ configPath: file }).root.vault?.namespace).toBe('team');
    expect(load({ configPath: file, env: { RUSTFS_KMS_VAULT_NAMESPACE: '' } }).root.vault?.namespace).toBe('');
    expect(envError({ RUSTFS_KMS_VAULT_NAMESPACE: 'bad ns' }).field).toBe('RUSTFS_KMS_VAULT_NAMESPACE');
  });

  it('generic VAULT_* variables are ignored', () => {
    const c = load({ env: { VAULT_ADDR: 'https://stray:8200', VAULT_TOKEN: 'stray', VAULT_NAMESPACE: 'stray' } });
    expect(c.root.vault).toBeUndefined();
    const e = envError({ RUSTFS_KMS_TYPE: 'vault', VAULT_ADDR: 'https://stray:8200', VAULT_TOKEN: 'stray' });
    expect(e.field).toBe('root.vault.address');
  });

  it('RUSTFS_KMS_LOCAL_KEY_DIR sets state_dir (and the derived key file)', () => {
    const c = load({ env: { RUSTFS_KMS_LOCAL_KEY_DIR: '/data/kms-keys' } });
    expect(c.stateDir).toBe('/data/kms-keys');
    expect(c.root.local.keyFile).toBe('/data/kms-keys/root.key');
  });

  it('RUSTFS_KMS_LOCAL_KEY_DIR and RUSTFS_KMS_STATE_DIR must agree', () => {
    expect(load({ env: { RUSTFS_KMS_LOCAL_KEY_DIR: '/a', RUSTFS_KMS_STATE_DIR: '/a/' } }).stateDir).toBe('/a');
    const e = envError({ RUSTFS_KMS_LOCAL_KEY_DIR: '/a', RUSTFS_KMS_STATE_DIR: '/b' });
    expect(e.field).toBe('RUSTFS_KMS_STATE_DIR');
    expect(e.message).toContain('RUSTFS_KMS_LOCAL_KEY_DIR');
  });

  it('RUSTFS_KMS_LOCAL_MASTER_KEY records only the variable name', () => {
    const secret = 'correct horse battery staple';
    const c = load({ env: { RUSTFS_KMS_LOCAL_MASTER_KEY: secret } });
    expect(c.root.local.passphraseEnv).toBe('RUSTFS_KMS_LOCAL_MASTER_KEY');
    expect(JSON.stringify(c)).not.toContain(secret);
    const e = envError({ RUSTFS_KMS_LOCAL_MASTER_KEY: '' });
    expect(e.field).toBe('RUSTFS_KMS_LOCAL_MASTER_KEY');
  });

  it('RUSTFS_KMS_DEFAULT_KEY_ID is validated against the key id pattern', () => {
    expect(load({ env: { RUSTFS_KMS_DEFAULT_KEY_ID: 'rustfs-master.v1_a' } }).defaultKeyId).toBe('rustfs-master.v1_a');
    for (const bad of ['-leading-dash', 'has space', 'a/b', 'x'.repeat(129), 'é']) {
      const e = envError({ RUSTFS_KMS_DEFAULT_KEY_ID: bad });
      expect(e.field).toBe('RUSTFS_KMS_DEFAULT_KEY_ID');
      expect(e.message).toMatch(/expected a key id matching/);
    }
    expect(load({ env: { RUSTFS_KMS_DEFAULT_KEY_ID: 'x'.repeat(128) } }).defaultKeyId).toHaveLength(128);
  });

  it('RUSTFS_KMS_TIMEOUT_SECS is an integer from 1 to 3600', () => {
    expect(load({ env: { RUSTFS_KMS_TIMEOUT_SECS: '3600' } }).timeoutSecs).toBe(3600);
    expect(load({ env: { RUSTFS_KMS_TIMEOUT_SECS: '1' } }).timeoutSecs).toBe(1);
    for (const bad of ['0', '3601', '-1', '1.5', '30s', ' 30', '1e3']) {
      const e = envError({ RUSTFS_KMS_TIMEOUT_SECS: bad });
      expect(e.field).toBe('RUSTFS_KMS_TIMEOUT_SECS');
      expect(e.message).toContain('expected an integer from 1 to 3600');
    }
  });

  it('RUSTFS_KMS_RETRY_ATTEMPTS is an integer from 0 to 20', () => {
    expect(load({ env: { RUSTFS_KMS_RETRY_ATTEMPTS: '0' } }).retryAttempts).toBe(0);
    expect(load({ env: { RUSTFS_KMS_RETRY_ATTEMPTS: '20' } }).retryAttempts).toBe(20);
    const e = envError({ RUSTFS_KMS_RETRY_ATTEMPTS: '21' });
    expect(e.message).toBe('config: RUSTFS_KMS_RETRY_ATTEMPTS: expected an integer from 0 to 20, got "21"');
  });

  it('RUSTFS_KMS_SOCKET and RUSTFS_KMS_STATE_DIR', () => {
    const c = load({ env: { RUSTFS_KMS_SOCKET: '/tmp/x/kms.sock', RUSTFS_KMS_STATE_DIR: '/srv/state' } });
    expect(c.socket.path).toBe('/tmp/x/kms.sock');
    expect(c.stateDir).toBe('/srv/state');
  });

  it('RUSTFS_KMS_LOG_LEVEL', () => {
    expect(load({ env: { RUSTFS_KMS_LOG_LEVEL: 'trace' } }).logLevel).toBe('trace');
    const e = envError({ RUSTFS_KMS_LOG_LEVEL: 'loud' });
    expect(e.field).toBe('RUSTFS_KMS_LOG_LEVEL');
    expect(e.message).toContain('one of fatal, error, warn, info, debug, trace');
  });

  it('RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY', () => {
    expect(load({ env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: '1' } }).allowUnlockedMemory).toBe(true);
    expect(load({ env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: 'TRUE' } }).allowUnlockedMemory).toBe(true);
    expect(load({ env: { RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: '0' } }).allowUnlockedMemory).toBe(false);
    expect(envError({ RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY: 'yes please' }).field).toBe('RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY');
  });

  it('empty non-secret variables count as unset', () => {
    const c = load({
      env: { RUSTFS_KMS_TYPE: '', RUSTFS_KMS_SOCKET: '', RUSTFS_KMS_TIMEOUT_SECS: '', RUSTFS_KMS_LOG_LEVEL: '', RUSTFS_KMS_CONFIG: '' },
    });
    expect(c).toEqual(load());
  });

  it('relative paths in the environment resolve against cwd', () => {
    const c = load({ env: { RUSTFS_KMS_STATE_DIR: 'state', RUSTFS_KMS_SOCKET: './run/kms.sock' } });
    expect(c.stateDir).toBe(join(dir, 'state'));
    expect(c.socket.path).toBe(join(dir, 'run', 'kms.sock'));
  });

  it('unrecognizedEnvVars lists RUSTFS_KMS_* names nothing reads', () => {
    expect(
      unrecognizedEnvVars({
        RUSTFS_KMS_TIMEOUT_SEC: '3',
        RUSTFS_KMS_TYPE: 'local',
        RUSTFS_KMS_NATIVE_TEST_HOOKS: '1',
        PATH: '/bin',
        RUSTFS_KMS_ENABLE: 'true',
      }),
    ).toEqual(['RUSTFS_KMS_ENABLE', 'RUSTFS_KMS_TIMEOUT_SEC']);
  });
});

// ------------------------------------------------------------------------------------------------------

describe('paths', () => {
  it('relative paths in the YAML resolve against the config file directory', () => {
    const etc = join(dir, 'etc', 'rustfs-kms');
    mkdirSync(etc, { recursive: true });
    const file = writeYaml(
      `
state_dir: ../../state
socket: { path: run/kms.sock }
root:
  local: { key_file: keys/root.key }
  vault: { address: "https://v", auth: { method: approle, role_id_file: role-id, secret_id_file: ./secret-id }, tls: { ca_file: ca.pem } }
audit: { path: ../../log/audit.log }
admin_http: { listen: "127.0.0.1:9000", access_key: adm, secret_key_file: admin.secret }
`,
      'config.yaml',
      etc,
    );
    // cwd is elsewhere: YAML paths must not depend on it.
    const c = load({ configPath: file, cwd: '/' });
    expect(c.stateDir).toBe(join(dir, 'state'));
    expect(c.socket.path).toBe(join(etc, 'run', 'kms.sock'));
    expect(c.root.local.keyFile).toBe(join(etc, 'keys', 'root.key'));
    expect(c.root.vault?.auth).toEqual({ method: 'approle', roleIdFile: join(etc, 'role-id'), secretIdFile: join(etc, 'secret-id'), mount: 'approle' });
    expect(c.root.vault?.tls.caFile).toBe(join(etc, 'ca.pem'));
    expect(c.audit.path).toBe(join(dir, 'log', 'audit.log'));
    expect(c.adminHttp?.secretKeyFile).toBe(join(etc, 'admin.secret'));
  });

  it('relative command-line paths resolve against cwd', () => {
    const c = load({ cli: { stateDir: 'st', socket: '../s.sock' } });
    expect(c.stateDir).toBe(join(dir, 'st'));
    expect(c.socket.path).toBe(join(dir, '..', 's.sock'));
  });

  it('without a base directory, relative YAML paths are errors', () => {
    const e = catchConfigError(() => configFromYaml('state_dir: state\n'));
    expect(e.field).toBe('state_dir');
    expect(e.message).toMatch(/absolute path/);
  });

  it('paths are normalized', () => {
    expect(configFromYaml('state_dir: /var//lib/./rustfs-kms/\n').stateDir).toBe('/var/lib/rustfs-kms');
  });

  it('an empty path is an error', () => {
    expect(yamlError('state_dir: ""\n').field).toBe('state_dir');
    expect(catchConfigError(() => load({ cli: { stateDir: '' } })).field).toBe('--state-dir');
  });

  it('derived paths follow state_dir from the environment (dev)', () => {
    const c = load({ cli: { dev: true }, env: { RUSTFS_KMS_STATE_DIR: '/srv/dev-kms' } });
    expect(c.socket.path).toBe('/srv/dev-kms/kms.sock');
    expect(c.root.local.keyFile).toBe('/srv/dev-kms/root.key');
    expect(c.audit.path).toBe('/srv/dev-kms/audit.log');
  });

  it('derived paths follow state_dir from the command line (dev)', () => {
    const c = load({ cli: { dev: true, stateDir: 'mystate' } });
    expect(c.stateDir).toBe(join(dir, 'mystate'));
    expect(c.socket.path).toBe(join(dir, 'mystate', 'kms.sock'));
    expect(c.root.local.keyFile).toBe(join(dir, 'mystate', 'root.key'));
    expect(c.audit.path).toBe(join(dir, 'mystate', 'audit.log'));
  });

  it('in production only the key file follows state_dir', () => {
    const c = load({ cli: { stateDir: '/srv/kms' } });
    expect(c.root.local.keyFile).toBe('/srv/kms/root.key');
    expect(c.socket.path).toBe('/run/rustfs-kms/kms.sock');
    expect(c.audit.path).toBe('/var/log/rustfs-kms/audit.log');
  });

  it('derived paths follow state_dir set in the YAML, explicit paths stay', () => {
    const c = configFromYaml('state_dir: /a\nsocket: { path: /b/kms.sock }\n', { cli: { dev: true } });
    expect(c.socket.path).toBe('/b/kms.sock');
    expect(c.root.local.keyFile).toBe('/a/root.key');
    expect(c.audit.path).toBe('/a/audit.log');
  });

  it('a socket path beyond the Unix socket limit is an error', () => {
    const long = `/${'d'.repeat(120)}/kms.sock`;
    expect(catchConfigError(() => load({ env: { RUSTFS_KMS_SOCKET: long } })).field).toBe('RUSTFS_KMS_SOCKET');
    expect(catchConfigError(() => load({ cli: { socket: long } })).field).toBe('--socket');
    const derived = catchConfigError(() => load({ cli: { dev: true, stateDir: `/${'d'.repeat(110)}` } }));
    expect(derived.field).toBe('socket.path');
    expect(derived.message).toContain('derived from --state-dir');
  });
});

// ------------------------------------------------------------------------------------------------------

describe('redactedConfig', () => {
  it('hides the Vault token and keeps everything else', () => {
    const token = 'hvs.CAESIJsupersecrettoken';
    const c = load({
      env: { RUSTFS_KMS_TYPE: 'vault', RUSTFS_KMS_VAULT_ADDRESS: 'https://vault:8200', RUSTFS_KMS_VAULT_TOKEN: token },
    });
    expect(c.root.vault?.auth).toEqual({ method: 'token', token });
    const r = redactedConfig(c);
    const text = JSON.stringify(r);
    expect(text).not.toContain(token);
    expect(text).not.toContain('supersecret');
    expect(r.root.vault?.auth).toEqual({ method: 'token', token: '[redacted]' });
    // Everything else is a faithful, JSON-safe copy.
    expect(JSON.parse(text)).toEqual(r);
    expect({ ...r, root: { ...r.root, vault: c.root.vault } }).toEqual(c);
    // The original is untouched.
    expect(c.root.vault?.auth).toEqual({ method: 'token', token });
  });

  it('no secret from the environment appears in the config or its redacted copy', () => {
    const secrets = { pass: 'local-passphrase-value', token: 's.vaulttokenvalue', pin: '98765432' };
    const file = writeYaml('root: { pkcs11: { module: /m.so, token_label: t, pin_env: HSM_PIN } }\n');
    const c = load({
      configPath: file,
      env: {
        RUSTFS_KMS_LOCAL_MASTER_KEY: secrets.pass,
        RUSTFS_KMS_VAULT_TOKEN: secrets.token,
        RUSTFS_KMS_VAULT_ADDRESS: 'https://vault:8200',
        RUSTFS_KMS_TYPE: 'vault',
        HSM_PIN: secrets.pin,
      },
    });
    const text = JSON.stringify(redactedConfig(c));
    for (const s of Object.values(secrets)) expect(text).not.toContain(s);
    expect(JSON.stringify(c)).not.toContain(secrets.pass);
    expect(JSON.stringify(c)).not.toContain(secrets.pin);
  });

  it('a config without secrets is returned unchanged', () => {
    const c = load({ cli: { dev: true } });
    expect(redactedConfig(c)).toEqual(c);
  });
});

describe('admin_http.listen stays on this host', () => {
  const admin = (listen: string) => `admin_http: { listen: "${listen}", access_key: admin, secret_key_file: /etc/rustfs-kms/admin.secret }\n`;

  it('accepts loopback addresses and absolute Unix socket paths', () => {
    for (const listen of ['127.0.0.1:9000', '127.0.0.53:1', '[::1]:9443', 'localhost:9000', '/run/rustfs-kms/admin.sock']) {
      expect(configFromYaml(admin(listen)).adminHttp?.listen).toBe(listen);
    }
  });

  it('refuses every other address, naming the field and what is allowed', () => {
    for (const listen of ['0.0.0.0:9000', '10.0.0.5:9000', '[::]:9000', 'kms.example.com:9000', 'relative/admin.sock']) {
      const err = yamlError(admin(listen));
      expect(err.field).toBe('admin_http.listen');
      expect(err.message).toContain('loopback');
    }
  });
});
