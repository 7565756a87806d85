// socket: the Unix socket that clients connect to.
import { Type, type Static } from '@sinclair/typebox';
import { annotate, optional, section, str } from '../field.js';
import { GROUP_PATTERN, MAX_ID, MAX_SOCKET_PATH_BYTES } from '../formats.js';
import { pathField } from './common.js';

export const PROD_SOCKET_PATH = '/run/rustfs-kms/kms.sock';
export const PROD_SOCKET_GROUP = 'rustfs-kms';
const MODE_TEXT = 'an octal mode string like "0660"';
const GROUP_TEXT = 'a group name or numeric gid ("" = keep the daemon\'s group)';

const group = annotate(
  Type.Union([Type.Literal(''), Type.String({ pattern: GROUP_PATTERN.source }), Type.Integer({ minimum: 0, maximum: MAX_ID })], {
    description: 'Group name or numeric gid to `chown` the socket to. `""` keeps the daemon\'s own group.',
  }),
  {
    expected: GROUP_TEXT,
    docType: 'string',
    docDefault: `\`${PROD_SOCKET_GROUP}\` (dev: unset)`,
    detail: (v) => (typeof v === 'number' ? `expected a numeric gid from 0 to ${MAX_ID}, got ${v}` : undefined),
  },
);

export const SocketSection = section(
  {
    path: optional(pathField({
      description: `Socket path. At most ${MAX_SOCKET_PATH_BYTES} bytes, the Unix socket limit.`,
      docDefault: `\`${PROD_SOCKET_PATH}\` (dev: \`<state_dir>/kms.sock\`)`,
    })),
    mode: optional(str({
      pattern: /^0?[0-7]{3}$/,
      default: '0660',
      expected: MODE_TEXT,
      docType: 'octal string',
      docDefault: '`"0660"`',
      description:
        'Permission bits, written as a **quoted** string of 3 or 4 octal digits (`"0660"`, `"660"`). Unquoted, `0660` would be ' +
        'the decimal number 660, so it is an error. Only the permission bits (up to `0777`) are allowed.',
      detail: (v) =>
        typeof v === 'number' ? `expected ${MODE_TEXT} (in quotes: an unquoted 0660 is the decimal number 660), got ${v}` : undefined,
    })),
    group: optional(group),
  },
  { description: 'The Unix socket that clients connect to.' },
);

export interface SocketConfig {
  path: string;
  /** Permission bits, e.g. 0o660. */
  mode: number;
  /** Group to chown the socket to; undefined keeps the daemon's own group. */
  group?: string;
}

/** group: null = explicitly none (keep the daemon's group). */
export interface SocketLayer {
  path?: string;
  mode?: number;
  group?: string | null;
}

export function readSocket(raw: Static<typeof SocketSection>): SocketLayer {
  const out: SocketLayer = {};
  if (raw.path !== undefined) out.path = raw.path;
  if (raw.mode !== undefined) out.mode = Number.parseInt(raw.mode, 8);
  if (raw.group !== undefined) out.group = raw.group === '' ? null : String(raw.group);
  return out;
}
