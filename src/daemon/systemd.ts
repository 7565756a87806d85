// systemd integration beyond the bare notify call: socket activation with named descriptors
// (sd_listen_fds_with_names), the service watchdog (sd_watchdog_enabled + WATCHDOG=1 pings), and
// the reload protocol's messages. No libsystemd: the environment variables are the whole protocol.
import { fstatSync, lstatSync, type Stats } from 'node:fs';
import { native } from '../native/index.js';
import { groupId } from '../access/identity.js';

/** The first inherited descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** FileDescriptorName= of the key service's socket in rustfs-kms.socket. */
export const KMS_FD_NAME = 'kms';
/** More than this many inherited descriptors is not a socket unit we ship; treat it as garbage. */
const LISTEN_FDS_MAX = 1024;

export class ActivationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ActivationError';
  }
}

export interface ActivatedSocket {
  fd: number;
  /** Its LISTEN_FDNAMES entry, when names were passed. */
  name?: string;
  /** How many descriptors systemd passed in all. */
  count: number;
}

export interface Activation {
  socket?: ActivatedSocket;
  /** Why the LISTEN_* variables present were not for us (worth a log line, not a refusal). */
  ignored?: string;
}

export interface ActivationProbe {
  fstat(fd: number): Stats;
  /** Throws unless fd is a listening (or connected) Unix stream socket. */
  peerCredentials(fd: number): unknown;
}

const realProbe: ActivationProbe = {
  fstat: (fd) => fstatSync(fd),
  peerCredentials: (fd) => native.peerCredentials(fd),
};

/**
 * sd_listen_fds_with_names() for this process. Returns no socket when the daemon was not socket-
 * activated (no LISTEN_PID, or a LISTEN_PID that is some other process's, e.g. inherited through a
 * wrapper). When LISTEN_PID names us, anything malformed is refused with an ActivationError rather
 * than guessed around: a bad LISTEN_FDS, names that do not match the count, several sockets none of
 * which is named "kms", or a descriptor that is not a listening Unix stream socket.
 * Picks the descriptor named "kms" when names are given, else the first (fd 3).
 * Like sd_listen_fds(1), it removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from `env` so nothing
 * the daemon might start later mistakes them for its own.
 */
export function socketActivation(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid, probe: ActivationProbe = realProbe): Activation {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const listenNames = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;

  if (listenPid === undefined || listenPid === '') {
    if (listenFds !== undefined && listenFds !== '') {
      return { ignored: `LISTEN_FDS=${clip(listenFds)} is set without LISTEN_PID; not socket-activated, ignoring it` };
    }
    return {};
  }
  if (!/^[1-9][0-9]*$/.test(listenPid)) {
    throw new ActivationError(`LISTEN_PID=${clip(listenPid)} is not a process id; refusing to guess whether the inherited sockets are ours`);
  }
  if (Number(listenPid) !== pid) {
    return { ignored: `LISTEN_PID=${listenPid} is another process (this is ${pid}); the LISTEN_* variables are not for us, ignoring them` };
  }
  if (listenFds === undefined || !/^[0-9]+$/.test(listenFds)) {
    throw new ActivationError(
      `LISTEN_PID is this process but LISTEN_FDS=${listenFds === undefined ? '(unset)' : clip(listenFds)} is not a number of file descriptors`,
    );
  }
  const count = Number(listenFds);
  if (count < 1) throw new ActivationError('socket activation passed no file descriptors (LISTEN_FDS=0); expected the "kms" socket');
  if (count > LISTEN_FDS_MAX) throw new ActivationError(`LISTEN_FDS=${count} is more descriptors than any socket unit passes (at most ${LISTEN_FDS_MAX})`);

  let index = 0;
  let name: string | undefined;
  if (listenNames !== undefined && listenNames !== '') {
    const names = listenNames.split(':');
    if (names.length !== count) {
      throw new ActivationError(`LISTEN_FDNAMES names ${names.length} descriptor(s) (${clip(listenNames)}) but LISTEN_FDS=${count}`);
    }
    const named = names.indexOf(KMS_FD_NAME);
    if (named >= 0) index = named;
    else if (count > 1) {
      throw new ActivationError(
        `socket activation passed ${count} sockets (${clip(names.join(', '))}) and none is named "${KMS_FD_NAME}"; ` +
          `set FileDescriptorName=${KMS_FD_NAME} on the key service's socket`,
      );
    }
    name = names[index];
  }
  const fd = LISTEN_FDS_START + index;
  const what = `inherited descriptor ${fd}${name !== undefined ? ` ("${name}")` : ''}`;
  let st: Stats;
  try {
    st = probe.fstat(fd);
  } catch (err) {
    throw new ActivationError(`${what} is not open: ${(err as Error).message}`);
  }
  if (!st.isSocket()) throw new ActivationError(`${what} is not a socket; expected a listening Unix stream socket`);
  try {
    // A listening Unix stream socket carries the credentials of whoever called listen();
    // TCP and datagram sockets have none, so this tells them apart without libsystemd.
    probe.peerCredentials(fd);
  } catch (err) {
    throw new ActivationError(`${what} is not a listening Unix stream socket (${(err as Error).message}); rustfs-kmsd serves only Unix sockets`);
  }
  return { socket: { fd, count, ...(name !== undefined ? { name } : {}) } };
}

/**
 * The group whose members the built-in policy lets use the data operations when the socket came
 * from systemd: socket.group from the config (which must match the unit's SocketGroup=), else the
 * group of the socket file at socket.path when that is a socket. Undefined when neither says.
 */
export function activatedSocketGid(socketPath: string, group: string | undefined): number | undefined {
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) return Number(group);
    const gid = groupId(group);
    if (gid !== undefined) return gid;
  }
  try {
    const st = lstatSync(socketPath);
    if (st.isSocket()) return st.gid;
  } catch {
    // no socket file at the configured path: nothing to go by
  }
  return undefined;
}

// ---- watchdog ---------------------------------------------------------------------------------

export interface WatchdogSetting {
  usec: number;
}

export interface WatchdogEnv {
  watchdog?: WatchdogSetting;
  /** Why WATCHDOG_* variables present were not used (log it). */
  ignored?: string;
}

/**
 * sd_watchdog_enabled(): WATCHDOG_USEC is a positive number of microseconds and WATCHDOG_PID is
 * unset or this process. Removes both variables from `env` (they describe this process only).
 */
export function watchdogFromEnv(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): WatchdogEnv {
  const usecText = env.WATCHDOG_USEC;
  const wpid = env.WATCHDOG_PID;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (usecText === undefined || usecText === '') return {};
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) {
    return { ignored: `WATCHDOG_PID=${clip(wpid)} is another process (this is ${pid}); not pinging the watchdog` };
  }
  if (!/^[1-9][0-9]*$/.test(usecText) || !Number.isSafeInteger(Number(usecText))) {
    return { ignored: `WATCHDOG_USEC=${clip(usecText)} is not a positive number of microseconds; not pinging the watchdog` };
  }
  return { watchdog: { usec: Number(usecText) } };
}

export interface SupervisorOptions {
  /** Watchdog deadline from WATCHDOG_USEC; pings go out every half of it. Undefined: no pings. */
  watchdogUsec?: number;
  /** Period of the status refresh when there is no watchdog. */
  statusIntervalMs?: number;
  /**
   * Is the key service fit to serve? Resolves true to allow this period's ping. A probe that has
   * not settled by the next period withholds that ping too, so a hung backend call stops pings.
   */
  probe: () => Promise<{ ok: boolean; status: string }>;
  send: (message: string) => void;
  /** A ping was withheld, or the event loop turned around late. */
  onProblem?: (problem: string) => void;
}

/**
 * One timer on the main event loop: each period it probes the key service, sends WATCHDOG=1 when
 * the probe says it is fit, and a STATUS= line when the status text changed. Because the timer runs
 * on the event loop (not a worker thread), a stalled loop stops the pings by itself and systemd
 * restarts the daemon after WatchdogSec.
 */
export class Supervisor {
  readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private lastStatus = '';
  private lastTick = 0;
  private pingCount = 0;
  private withheld = false;

  constructor(private readonly options: SupervisorOptions) {
    this.intervalMs = options.watchdogUsec !== undefined
      ? Math.max(10, Math.floor(options.watchdogUsec / 2000))
      : Math.max(10, options.statusIntervalMs ?? 10_000);
  }

  get watchdog(): boolean {
    return this.options.watchdogUsec !== undefined;
  }

  get pings(): number {
    return this.pingCount;
  }

  /** Remembers a STATUS= text sent elsewhere, so the next tick sends it only if it changed. */
  noteStatus(status: string): void {
    this.lastStatus = status;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = Date.now();
    const late = now - this.lastTick - this.intervalMs;
    this.lastTick = now;
    if (late > this.intervalMs) {
      this.options.onProblem?.(`event loop turned around ${late} ms late (period ${this.intervalMs} ms)`);
    }
    if (this.probing) {
      this.problem('the previous health probe has not answered; withholding the watchdog ping');
      return;
    }
    this.probing = true;
    let settled: Promise<{ ok: boolean; status: string }>;
    try {
      settled = this.options.probe();
    } catch (err) {
      settled = Promise.reject(err);
    }
    settled.then(
      (result) => {
        this.probing = false;
        if (this.timer === undefined) return; // stopped meanwhile: shutting down
        const lines: string[] = [];
        if (this.watchdog) {
          if (result.ok) {
            lines.push('WATCHDOG=1');
            this.pingCount += 1;
            this.withheld = false;
          } else this.problem(`key service unhealthy (${result.status}); withholding the watchdog ping`);
        }
        if (result.status !== this.lastStatus) {
          lines.push(`STATUS=${statusText(result.status)}`);
          this.lastStatus = result.status;
        }
        if (lines.length > 0) this.options.send(lines.join('\n'));
      },
      (err: unknown) => {
        this.probing = false;
        this.problem(`health probe failed: ${err instanceof Error ? err.message : String(err)}; withholding the watchdog ping`);
      },
    );
  }

  /** Reports a withheld ping once per episode, not every period. */
  private problem(message: string): void {
    if (!this.watchdog || this.withheld) return;
    this.withheld = true;
    this.options.onProblem?.(message);
  }
}

// ---- notify protocol helpers ------------------------------------------------------------------

/** CLOCK_MONOTONIC in microseconds (libuv's hrtime is CLOCK_MONOTONIC on Linux), for MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** A STATUS= value is one line: newlines would start new notify assignments. */
export function statusText(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 400);
}

/** RELOADING=1 with the timestamp systemd (≥ 253, Type=notify-reload) matches against. */
export function reloadingMessage(status = 'reloading configuration'): string {
  return `RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}\nSTATUS=${statusText(status)}`;
}

function clip(value: string): string {
  return value.length > 60 ? `${value.slice(0, 60)}…` : value;
}
