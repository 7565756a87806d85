// Value formats shared by the YAML sections and the environment overlay: patterns, and the refinements
// that a JSON Schema pattern cannot express (path resolution, URL parsing, loopback addresses).
import { isIP } from 'node:net';
import * as path from 'node:path';
import type { FieldErrors } from './errors.js';
import type { RefineContext } from './field.js';

export const MOUNT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;
export const VAULT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const NAMESPACE_PATTERN = /^[A-Za-z0-9._/-]*$/;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** User and group names; all-digit names are refused (use uid / gid for numeric ids). */
export const ACCOUNT_NAME_PATTERN = /^(?![0-9]+$)[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?$/;
export const ACCESS_KEY_PATTERN = /^[A-Za-z0-9._@+=-]{3,128}$/;
export const KEY_GLOB_PATTERN = /^[A-Za-z0-9._*?-]{1,128}$/;
export const REGION_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
export const HOSTNAME_PATTERN = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
export const GROUP_PATTERN = /^(?:[0-9]+|[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?)$/;
/** Printable, no whitespace (labels, role names, tokens). */
export const NO_SPACE_PRINTABLE = /^[!-~]+$/;
/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
export const MAX_ID = 4_294_967_294;

export const SECONDS = 'an integer number of seconds';
export const MILLIS = 'an integer number of milliseconds';
export const BYTES = 'an integer number of bytes';

/** An absolute, normalized path; a relative one resolves against the context's base directory. */
export function filePath(v: string, ctx: RefineContext): string {
  if (v === '' || v.includes('\0')) ctx.errors.fail(ctx.field, 'a file system path', v);
  if (path.isAbsolute(v)) return path.resolve(v); // normalized, no trailing slash
  if (ctx.baseDir === undefined) {
    ctx.errors.fail(ctx.field, 'an absolute path (a relative path needs a config file to resolve against)', v);
  }
  return path.resolve(ctx.baseDir, v);
}

const VAULT_URL = 'an http(s) URL like "https://vault.example.com:8200"';

/** An http(s) origin plus optional path prefix, without trailing slash; never echoes credentials. */
export function vaultAddress(v: string, ctx: RefineContext): string {
  const errors: FieldErrors = ctx.errors;
  const field = ctx.field;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    errors.fail(field, VAULT_URL, v);
  }
  if (url.username !== '' || url.password !== '') {
    errors.failDetail(field, VAULT_URL, `expected ${VAULT_URL} without user:password (credentials belong in root.vault.auth)`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') errors.fail(field, VAULT_URL, v);
  if (url.search !== '' || url.hash !== '') errors.fail(field, `${VAULT_URL} without a query or fragment`, v);
  const pathname = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${pathname}`;
}
vaultAddress.expected = VAULT_URL;

const LISTEN = 'a loopback host:port like "127.0.0.1:9000" or "[::1]:9000", or an absolute Unix socket path';

/**
 * The admin HTTP API listens on loopback or on a Unix socket only: it answers without TLS, and a
 * per-host key manager has no business being reachable from the network.
 */
export function loopbackListen(v: string, ctx: RefineContext): string {
  const errors: FieldErrors = ctx.errors;
  const field = ctx.field;
  if (v.startsWith('/')) {
    if (v.length > MAX_SOCKET_PATH_BYTES) errors.fail(field, `${LISTEN} (at most ${MAX_SOCKET_PATH_BYTES} bytes)`, v);
    return v;
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(v);
  if (m === null) errors.fail(field, LISTEN, v);
  const [, v6, host, port] = m;
  const portNumber = Number(port);
  if (portNumber < 1 || portNumber > 65_535) errors.fail(field, `${LISTEN} (port 1 to 65535)`, v);
  const loopback =
    v6 !== undefined ? v6 === '::1' : host === 'localhost' || (isIP(host as string) === 4 && (host as string).startsWith('127.'));
  if (!loopback) errors.fail(field, LISTEN, v);
  return v;
}
loopbackListen.expected = LISTEN;
