// The documented drop-ins under a real systemd (test/systemd/boot.sh), each applied the way
// docs/operations.md says and the daemon working with it: network.conf with a Vault root and
// keystore (the Vault API test server on the host's loopback, which the boot shares), and hsm.conf
// with a SoftHSM2 token under the unit's sandbox. One boot for the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveSoftHsm } from '../pkcs11/harness.js';
import { VaultTestServer } from '../vault-server/server.js';
import { Boot, bootUnavailable } from './boot.js';

const unavailable = bootUnavailable() ?? (haveSoftHsm() ? undefined : 'SoftHSM2 or OpenSC is not installed (scripts/install-test-deps.sh installs them)');
const DROPINS = '/usr/local/lib/node_modules/rustfs-kms/systemd/drop-ins';

let boot: Boot;

/** Replaces the drop-ins and the config, then restarts; returns the journal when it does not start. */
async function reconfigure(dropIn: string, config: string): Promise<void> {
  await boot.sh(`systemctl stop rustfs-kms.service
    rm -rf /etc/systemd/system/rustfs-kms.service.d /var/lib/rustfs-kms/keys /var/lib/rustfs-kms/root.key
    mkdir -p /etc/systemd/system/rustfs-kms.service.d
    cp ${DROPINS}/${dropIn} /etc/systemd/system/rustfs-kms.service.d/
    cat > /etc/rustfs-kms/config.yaml
    systemctl daemon-reload`, { input: config });
}

describe.skipIf(unavailable !== undefined)(`the documented drop-ins under systemd as PID 1${unavailable !== undefined ? ` (skipped: ${unavailable})` : ''}`, () => {
  const vault = new VaultTestServer();
  beforeAll(async () => {
    boot = Boot.start('drop-ins');
    await boot.installLocal();
    await boot.sh('systemctl enable --now rustfs-kms.socket 2>/dev/null');
    await vault.start();
  });
  afterAll(async () => {
    boot?.stop();
    await vault.stop();
  });

  it('network.conf: a Vault-rooted daemon reaches Vault on loopback', async () => {
    const api = async (path: string, body: unknown) => {
      const r = await fetch(`${vault.address}/v1/${path}`, { method: 'POST', headers: { 'X-Vault-Token': vault.rootToken }, body: JSON.stringify(body) });
      expect(r.status, `${path}: ${await r.clone().text()}`).toBeLessThan(300);
    };
    await api('sys/mounts/s15-transit', { type: 'transit' });
    await api('sys/mounts/s15-kv', { type: 'kv', options: { version: '2' } });
    await api('s15-transit/keys/rustfs-kms', {});
    await boot.sh(`umask 077; printf '%s' "$(cat)" > /etc/rustfs-kms/vault-token; chown rustfs-kms: /etc/rustfs-kms/vault-token`, { input: vault.rootToken });
    await reconfigure('network.conf', [
      'socket: { path: /run/rustfs-kms/kms.sock, group: rustfs-kms }',
      'root:',
      '  type: vault-transit',
      `  vault: { address: "${vault.address}", transit_mount: s15-transit, transit_key: rustfs-kms, auth: { method: token, token_file: /etc/rustfs-kms/vault-token } }`,
      'keystore: { type: vault-kv, kv_mount: s15-kv, prefix: rustfs-kms }',
      '',
    ].join('\n'));
    expect(await boot.sh('systemd-analyze security --no-pager rustfs-kms.service | tail -1')).toMatch(/exposure level for rustfs-kms\.service: (0|1)\.\d/);
    const created = await boot.run(['rustfs-kms', 'key', 'create', 'vk1']);
    expect(created.code, `${created.stderr}\n${await boot.journal()}`).toBe(0);
    expect(created.stdout).toMatch(/origin:\s+vault/);
    expect(await boot.sh('rustfs-kms status')).toMatch(/root:\s+vault-transit[\s\S]*keystore:\s+vault-kv/);
    expect(await boot.sh('systemctl show -p DropInPaths --value rustfs-kms.service')).toMatch(/network\.conf/);
    // The daemon, not the test, did the Transit wrap.
    expect(vault.requests.some((r) => r.path.includes('s15-transit/encrypt/rustfs-kms') && r.status === 200)).toBe(true);
  });

  it('hsm.conf: a PKCS#11-rooted daemon uses a SoftHSM2 token under the sandbox', async () => {
    // SoftHSM's token directory is 2770 root:softhsm: the service user joins the group (as
    // docs/pkcs11.md says) and makes the token itself, so its files are the daemon's to read.
    await boot.sh(`usermod -aG softhsm rustfs-kms
      runuser -u rustfs-kms -- softhsm2-util --init-token --free --label rustfs-kms --pin 739251 --so-pin 82640173 >/dev/null
      umask 077; printf 739251 > /etc/rustfs-kms/pin; chown rustfs-kms: /etc/rustfs-kms/pin`);
    await reconfigure('hsm.conf', [
      'socket: { path: /run/rustfs-kms/kms.sock, group: rustfs-kms }',
      'root:',
      '  type: pkcs11',
      '  pkcs11: { module: /usr/lib/softhsm/libsofthsm2.so, token_label: rustfs-kms, pin_file: /etc/rustfs-kms/pin, key_label: rustfs-kms-root, mode: wrap }',
      'keystore: { type: file }',
      '',
    ].join('\n'));
    await boot.sh('runuser -u rustfs-kms -- rustfs-kms init --config /etc/rustfs-kms/config.yaml >/dev/null');
    const created = await boot.run(['rustfs-kms', 'key', 'create', 'hk1']);
    expect(created.code, `${created.stderr}\n${await boot.journal()}`).toBe(0);
    expect(await boot.sh('rustfs-kms status')).toMatch(/root:\s+pkcs11/);
    const dk = /^plaintext \(hex\):\s+([0-9a-f]{64})$/m.exec(await boot.sh('rustfs-kms datakey hk1 --ciphertext-out /root/hk.bin'))?.[1];
    expect(await boot.sh('rustfs-kms decrypt < /root/hk.bin | od -An -tx1 | tr -d " \\n"; echo')).toBe(`${dk}\n`);
    // The sandbox is still there: devices hidden except the allowed classes, system read-only.
    const pid = await boot.prop('MainPID');
    expect((await boot.run(['nsenter', '-t', pid, '-m', 'touch', '/usr/local/probe'])).stderr).toMatch(/Read-only file system/);
    expect(await boot.sh('systemctl show -p DevicePolicy -p PrivateDevices --value rustfs-kms.service')).toBe('closed\nno\n');
  });
});
