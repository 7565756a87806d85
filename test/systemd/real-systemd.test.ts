// The shipped units under a real systemd (PID 1 of private namespaces, test/systemd/boot.sh): install
// as an operator does, socket activation, notify readiness, the sandbox as the kernel reports it,
// reload, stop under load, watchdog and Restart=. One boot for the whole file; the tests run in order
// and build on each other (the key made early must survive the restarts later).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Boot, bootUnavailable, until } from './boot.js';

const unavailable = bootUnavailable();
const SOCK = '/run/rustfs-kms/kms.sock';
const PKG = '/usr/local/lib/node_modules/rustfs-kms'; // where boot.sh shows the checkout
const MEMBER = 4242; // a storage process's uid, in the socket group
const STRANGER = 4243; // in no group

let boot: Boot;
let gid = 0;
const asMember = (cmd: string) => `setpriv --reuid ${MEMBER} --regid ${MEMBER} --groups ${gid} ${cmd}`;
const asStranger = (cmd: string) => `setpriv --reuid ${STRANGER} --regid ${STRANGER} --clear-groups ${cmd}`;

async function mainPid(): Promise<number> {
  return Number(await boot.prop('MainPID'));
}

async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await boot.sh(`cat /proc/${pid}/status`);
  return Object.fromEntries(text.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}

/** Waits for a new main process (after a restart) that systemd considers started (READY=1). */
async function restartedFrom(old: number): Promise<number> {
  return until(async () => {
    const [pid, state, sub] = [await mainPid(), await boot.prop('ActiveState'), await boot.prop('SubState')];
    return pid !== 0 && pid !== old && state === 'active' && sub === 'running' ? pid : undefined;
  }, 45_000, `a restarted rustfs-kms.service (old pid ${old})`);
}

describe.skipIf(unavailable !== undefined)(`the shipped units under systemd as PID 1${unavailable !== undefined ? ` (skipped: ${unavailable})` : ''}`, () => {
  beforeAll(() => {
    boot = Boot.start('units');
  });
  afterAll(() => boot?.stop());

  it('install-systemd: sysusers and tmpfiles applied by systemd\'s tools, the socket listening before the daemon runs', async () => {
    await boot.installLocal();
    const group = (await boot.sh('getent group rustfs-kms')).trim().split(':');
    gid = Number(group[2]);
    expect(gid).toBeGreaterThan(0);
    expect(await boot.sh('getent passwd rustfs-kms')).toMatch(/^rustfs-kms:x:\d+:\d+:.*:\/var\/lib\/rustfs-kms:/);
    expect(await boot.sh('stat -c "%a %U %G" /var/lib/rustfs-kms /var/log/rustfs-kms /run/rustfs-kms')).toBe(
      '700 rustfs-kms rustfs-kms\n700 rustfs-kms rustfs-kms\n755 rustfs-kms rustfs-kms\n');

    await boot.sh('systemctl enable --now rustfs-kms.socket 2>/dev/null');
    expect(await boot.sh(`stat -c "%F %a %U %G" ${SOCK}`)).toBe('socket 660 rustfs-kms rustfs-kms\n');
    expect(await boot.prop('ActiveState', 'rustfs-kms.socket')).toBe('active');
    expect(await boot.prop('ActiveState')).toBe('inactive');
  });

  it('the first connection starts the service; Type=notify readiness with the daemon\'s STATUS=', async () => {
    expect(await boot.sh('rustfs-kms health')).toMatch(/healthy:\s+true/);
    expect(await boot.prop('ActiveState')).toBe('active'); // for Type=notify: READY=1 arrived
    expect(await boot.prop('StatusText')).toMatch(/^serving 0 keys on an activated socket \(fd 3 "kms"\)/);
    expect(await boot.prop('NRestarts')).toBe('0');
    const status = await boot.sh('systemctl status --no-pager rustfs-kms.service || true');
    expect(status).toMatch(/TriggeredBy: .*rustfs-kms\.socket/);
    expect(status).toMatch(/Status: "serving \d+ keys on an activated socket/);
  });

  it('the CLI works through the socket for a member of the socket group, and is refused for a stranger', async () => {
    await boot.sh('rustfs-kms key create k1 >/dev/null');
    expect(await boot.sh(asMember('rustfs-kms health'))).toMatch(/healthy:\s+true/);
    expect(await boot.sh(asMember('rustfs-kms datakey k1 --context bucket=b'))).toMatch(/^plaintext \(hex\):\s+[0-9a-f]{64}$/m);
    // Members get data operations only (the built-in policy), not key management.
    const manage = await boot.run(['sh', '-c', asMember('rustfs-kms key create k2')]);
    expect(manage.code).toBe(1);
    expect(manage.stderr).toMatch(/AccessDenied/);
    const stranger = await boot.run(['sh', '-c', asStranger('rustfs-kms health')]);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toMatch(/EACCES|permission denied/i);
  });

  it('the sandbox is in effect in the running process', async () => {
    const pid = await mainPid();
    const st = await procStatus(pid);
    expect(st.NoNewPrivs).toBe('1');
    expect(st.Seccomp).toBe('2');
    // CapabilityBoundingSet= and AmbientCapabilities= are empty: no capability at all.
    expect(await boot.prop('CapabilityBoundingSet')).toBe('');
    expect(st.CapEff).toBe('0000000000000000');
    expect(st.CapPrm).toBe('0000000000000000');
    expect(st.CapBnd).toBe('0000000000000000');
    expect(st.Uid?.split(/\s+/)[0]).toBe((await boot.sh('id -u rustfs-kms')).trim());
    // ProtectSystem=strict: read-only outside the unit's directories, even for root in its namespace.
    const inDaemonNs = (cmd: string) => boot.run(['sh', '-c', `nsenter -t ${pid} -m ${cmd}`]);
    for (const path of ['/etc/rustfs-kms/probe', '/usr/local/probe', '/var/probe', '/opt/probe']) {
      const r = await inDaemonNs(`touch ${path}`);
      expect(r.code, path).not.toBe(0);
      expect(r.stderr, path).toMatch(/Read-only file system/);
    }
    expect((await inDaemonNs('setpriv --reuid rustfs-kms --regid rustfs-kms --clear-groups touch /var/lib/rustfs-kms/.probe /var/log/rustfs-kms/.probe')).code).toBe(0);
    await boot.sh('rm -f /var/lib/rustfs-kms/.probe /var/log/rustfs-kms/.probe');
    // PrivateTmp=: the daemon's /tmp is its own.
    await boot.sh('echo host > /tmp/outside-the-unit');
    expect((await inDaemonNs('test -e /tmp/outside-the-unit')).code).toBe(1);
    // ProtectHome=: /home and /root are empty and inaccessible.
    expect((await inDaemonNs('setpriv --reuid rustfs-kms --regid rustfs-kms --clear-groups ls /root')).code).not.toBe(0);
  });

  it('systemd-analyze security gives the live unit the same exposure as the offline check', async () => {
    const exposure = (text: string) => Number(/Overall exposure level for rustfs-kms\.service: ([\d.]+)/.exec(text)?.[1]);
    const live = exposure(await boot.sh('systemd-analyze security --no-pager rustfs-kms.service'));
    const offline = exposure(await boot.sh('systemd-analyze security --no-pager --offline=yes rustfs-kms.service'));
    expect(live).toBe(offline);
    expect(live).toBeLessThanOrEqual(2.0);
  });

  it('systemctl reload applies a new policy on live connections', async () => {
    // Inside the boot: the daemon refuses peers from another PID namespace (pid 0 in SO_PEERCRED).
    const session = boot.spawnLines(['node', `${PKG}/test/systemd/wire-client.mjs`, 'session', SOCK]);
    const call = async (op: string) => {
      session.child.stdin.write(`${op}\n`);
      return JSON.parse(await session.line()) as { ok: boolean; error?: { code: string } };
    };
    try {
      expect(await session.line()).toBe('connected');
      expect((await call('status')).ok).toBe(true);
      await boot.sh(`cp /etc/rustfs-kms/config.yaml /etc/rustfs-kms/config.yaml.orig
        printf 'policy:\\n  - { match: { uid: 0 }, allow: [health] }\\n' >> /etc/rustfs-kms/config.yaml`);
      const pid = await mainPid();
      await boot.sh('systemctl reload rustfs-kms.service');
      expect(await mainPid()).toBe(pid); // reloaded, not restarted
      expect(await boot.prop('StatusText')).toMatch(/^reloaded policy and log level/);
      const denied = await call('status');
      expect(denied.ok).toBe(false);
      expect(denied.error?.code).toBe('AccessDenied');
      expect((await call('health')).ok).toBe(true);
    } finally {
      session.child.stdin.end();
      await boot.run(['sh', '-c', 'test ! -e /etc/rustfs-kms/config.yaml.orig || mv /etc/rustfs-kms/config.yaml.orig /etc/rustfs-kms/config.yaml && systemctl reload rustfs-kms.service']);
    }
  });

  it('systemctl stop under load: every request read is answered, the audit log verifies, exit 0', async () => {
    const load = boot.spawnLines(['node', `${PKG}/test/systemd/wire-client.mjs`, 'load', SOCK, 'k1']);
    expect(await load.line()).toBe('ready'); // 2000 answers, thousands more in flight
    const pid = await mainPid();
    await boot.sh('systemctl stop rustfs-kms.service');
    const summary = JSON.parse(await load.line()) as { codes: Record<string, number>; unansweredBeforeAnswered: number; sent: number };
    expect(await boot.prop('ExecMainStatus')).toBe('0');
    expect(await boot.prop('Result')).toBe('success');
    expect(await boot.prop('ActiveState')).toBe('inactive');
    expect((await boot.run(['test', '-d', `/proc/${pid}`])).code).toBe(1);
    // Answers are ok, Busy (read, never started) or BackendUnavailable (started, cut at the deadline).
    expect(Object.keys(summary.codes).filter((c) => !['ok', 'Busy', 'BackendUnavailable'].includes(c))).toEqual([]);
    expect(summary.codes.ok).toBeGreaterThanOrEqual(2000);
    expect(summary.unansweredBeforeAnswered).toBe(0);
    await boot.sh('rustfs-kms audit verify /var/log/rustfs-kms/audit.log'); // exits 1 on a broken chain
    // The socket stayed: the next client starts the daemon again.
    expect(await boot.prop('ActiveState', 'rustfs-kms.socket')).toBe('active');
    expect(await boot.sh('rustfs-kms health')).toMatch(/healthy:\s+true/);
  });

  it('Restart=on-failure brings the daemon back after SIGKILL, serving the same keys', async () => {
    const sealed = /^plaintext \(hex\):\s+([0-9a-f]{64})$/m.exec(await boot.sh('rustfs-kms datakey k1 --ciphertext-out /root/dk.bin'))?.[1];
    expect(sealed).toBeDefined();
    const restarts = Number(await boot.prop('NRestarts'));
    const pid = await mainPid();
    await boot.sh(`kill -KILL ${pid}`);
    await restartedFrom(pid);
    expect(Number(await boot.prop('NRestarts'))).toBe(restarts + 1);
    expect(await boot.sh('rustfs-kms decrypt < /root/dk.bin | od -An -tx1 | tr -d " \\n"; echo')).toBe(`${sealed}\n`);
  });

  it('the watchdog restarts a daemon that stops pinging (SIGSTOP; WatchdogSec shortened by a test drop-in)', async () => {
    await boot.sh(`mkdir -p /run/systemd/system/rustfs-kms.service.d
      printf '[Service]\\nWatchdogSec=2s\\n' > /run/systemd/system/rustfs-kms.service.d/test-watchdog.conf
      systemctl daemon-reload && systemctl restart rustfs-kms.service`);
    try {
      const restarts = Number(await boot.prop('NRestarts'));
      const pid = await mainPid();
      await boot.sh(`kill -STOP ${pid}`);
      await restartedFrom(pid);
      expect(Number(await boot.prop('NRestarts'))).toBe(restarts + 1);
      expect(await boot.journal()).toMatch(/Watchdog timeout \(limit 2s\)/);
      expect(await boot.sh('rustfs-kms key list')).toMatch(/^k1\s+Enabled/m);
    } finally {
      await boot.sh('rm -rf /run/systemd/system/rustfs-kms.service.d && systemctl daemon-reload');
    }
  });
});
