// Who is calling: the kernel's word for socket peers, the verified access key for signed HTTP,
// the process itself for the in-process library. Claimed context never lands here.
import { readFileSync } from 'node:fs';

export interface Caller {
  kind: 'peer' | 'access-key' | 'in-process';
  uid?: number;
  gid?: number;
  pid?: number;
  /** Primary and supplementary gids. */
  groups?: number[];
  user?: string;
  groupNames?: string[];
  accessKey?: string;
  /** Peer address of an HTTP caller (the TCP connection's, not a claimed header). */
  sourceIp?: string;
}

interface NameTables {
  users: Map<number, string>;
  groups: Map<number, string>;
}

let tables: NameTables | null = null;

/** Re-read /etc/passwd and /etc/group (on start and SIGHUP); missing files mean numeric ids only. */
export function reloadNameTables(): void {
  tables = { users: parseIdFile('/etc/passwd'), groups: parseIdFile('/etc/group') };
}

function parseIdFile(path: string): Map<number, string> {
  const map = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return map;
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    const n = Number(id);
    if (name && Number.isInteger(n) && !map.has(n)) map.set(n, name);
  }
  return map;
}

export function userName(uid: number): string | undefined {
  if (tables === null) reloadNameTables();
  return (tables as NameTables).users.get(uid);
}

export function groupName(gid: number): string | undefined {
  if (tables === null) reloadNameTables();
  return (tables as NameTables).groups.get(gid);
}

export function groupId(name: string): number | undefined {
  if (tables === null) reloadNameTables();
  for (const [gid, n] of (tables as NameTables).groups) if (n === name) return gid;
  return undefined;
}

/** A socket peer as the kernel reported it, with names resolved where they exist. */
export function peerCaller(cred: { uid: number; gid: number; pid: number; groups: number[] }): Caller {
  const gids = cred.groups.includes(cred.gid) ? cred.groups : [cred.gid, ...cred.groups];
  const caller: Caller = { kind: 'peer', uid: cred.uid, gid: cred.gid, pid: cred.pid, groups: gids };
  const user = userName(cred.uid);
  if (user !== undefined) caller.user = user;
  caller.groupNames = gids.map((g) => groupName(g)).filter((n): n is string => n !== undefined);
  return caller;
}
