// One audit line per operation. Built by hand in a fixed field order (cheaper than
// JSON.stringify of an object, and the order is part of what operators grep for). Never a
// plaintext, a key, or a ciphertext body: only the fields listed here.
import type { Caller } from '../access/identity.js';
import type { AuditEvent } from './event.js';
import { capClaims } from './claims.js';

const callerJson = new WeakMap<Caller, string>();

/** The kernel's (or the signature's) identity, serialised once per connection. */
function callerFragment(caller: Caller): string {
  let json = callerJson.get(caller);
  if (json === undefined) {
    const c: Record<string, unknown> = { kind: caller.kind };
    if (caller.uid !== undefined) c.uid = caller.uid;
    if (caller.gid !== undefined) c.gid = caller.gid;
    if (caller.pid !== undefined) c.pid = caller.pid;
    if (caller.user !== undefined) c.user = caller.user;
    if (caller.groups !== undefined) c.groups = caller.groups;
    if (caller.groupNames !== undefined && caller.groupNames.length > 0) c.group_names = caller.groupNames;
    if (caller.accessKey !== undefined) c.access_key = caller.accessKey;
    if (caller.sourceIp !== undefined) c.source_ip = caller.sourceIp;
    json = JSON.stringify(c);
    callerJson.set(caller, json);
  }
  return json;
}

/** The line without `prev` and the closing brace; the log appends those. */
export function formatEvent(seq: number, time: number, event: AuditEvent): string {
  let line = `{"seq":${seq},"time":${time},"op":${JSON.stringify(event.op)},"transport":"${event.transport}"`;
  if (event.keyId !== undefined) line += `,"key_id":${JSON.stringify(event.keyId)}`;
  if (event.keyVersion !== undefined) line += `,"key_version":${event.keyVersion}`;
  line += `,"caller":${callerFragment(event.caller)}`;
  if (event.claimed !== undefined) line += `,"claimed":${JSON.stringify(capClaims(event.claimed))}`;
  line += `,"outcome":"${event.outcome}"`;
  if (event.errorCode !== undefined) line += `,"error_code":"${event.errorCode}"`;
  return line + `,"duration_us":${event.durationUs}`;
}

/** One line standing for `count` refusals like `event` (the last of them) since `since` (ms). */
export function formatSummary(seq: number, time: number, event: AuditEvent, count: number, since: number): string {
  return formatEvent(seq, time, event) + `,"count":${count},"since":${since}`;
}

/** Daemon lifecycle lines (start, reload, stop) share the chain with operations. */
export function formatLifecycle(
  seq: number, time: number, op: string, detail: Record<string, string | number>, outcome: 'success' | 'failure' = 'success',
): string {
  return `{"seq":${seq},"time":${time},"op":${JSON.stringify(op)},"transport":"daemon","detail":${JSON.stringify(detail)},"outcome":"${outcome}"`;
}
