// admin_http: the MinIO-compatible admin HTTP API (off unless the section is present).
import type { Static } from '@sinclair/typebox';
import { camelKeys, defaultValue, int, optional, section, str, type CamelKeys } from '../field.js';
import { ACCESS_KEY_PATTERN, REGION_PATTERN, loopbackListen } from '../formats.js';
import { pathField } from './common.js';

const WHEN = 'when admin_http is set';
const ACCESS_KEY_TEXT = 'an access key of 3 to 128 characters [A-Za-z0-9._@+=-]';

export const AdminHttpSection = section(
  {
    listen: str({
      expected: loopbackListen.expected,
      refine: loopbackListen,
      missing: { expected: 'host:port like "127.0.0.1:9000"', when: WHEN },
      docType: 'loopback `host:port`, or an absolute Unix socket path',
      description:
        'e.g. `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000` or `/run/rustfs-kms/admin.sock`. Other addresses are refused: the API ' +
        'answers without TLS and the daemon serves its own host. Reach it from elsewhere through an SSH tunnel or a TLS-terminating proxy on the host.',
    }),
    access_key: str({
      pattern: ACCESS_KEY_PATTERN,
      expected: ACCESS_KEY_TEXT,
      missing: { expected: ACCESS_KEY_TEXT, when: WHEN },
      docType: 'string (3–128 chars, `[A-Za-z0-9._@+=-]`)',
      description: 'SigV4 access key.',
    }),
    secret_key_file: pathField({
      missing: { expected: 'the path of the file holding the secret key', when: WHEN },
      description: 'File that holds the SigV4 secret key.',
    }),
    region: optional(str({ pattern: REGION_PATTERN, default: 'us-east-1', expected: 'a region name like "us-east-1"', description: 'SigV4 region. A request whose credential scope names a region must name this one; an empty region (`AK/DATE//s3/aws4_request`, what MinIO\'s madmin-go sends) is verified with the empty region, as MinIO does.' })),
    max_connections: optional(int({
      min: 1, max: 65_536, default: 128,
      description: 'Connections held at once. Over it a newcomer is not refused: it evicts the longest-idle connection that never carried a verified request (see [security.md](security.md#11-hostile-local-clients-issue-11)).',
    })),
    max_connections_per_source: optional(int({
      min: 1, max: 65_536, default: 64, docDefault: '`64` (at most `max_connections`)',
      description: "Connections held at once from one source address, at most `max_connections`; over it the newcomer evicts that source's longest-idle connection. On loopback most clients share one address.",
    })),
  },
  {
    description: 'MinIO-compatible admin HTTP API. Off unless this section is present.',
    docDefault: 'unset (off)',
    hints: { secret_key: 'secret_key_file (a file holding the secret key; no secrets in the config file)' },
  },
);

export type AdminHttpConfig = CamelKeys<Required<Static<typeof AdminHttpSection>>>;

export function readAdminHttp(s: Static<typeof AdminHttpSection>): AdminHttpConfig {
  const p = AdminHttpSection.properties;
  const maxConnections = s.max_connections ?? defaultValue(p.max_connections);
  return {
    ...camelKeys(s),
    region: s.region ?? defaultValue(p.region),
    maxConnections,
    maxConnectionsPerSource: s.max_connections_per_source ?? Math.min(defaultValue(p.max_connections_per_source), maxConnections),
  };
}
