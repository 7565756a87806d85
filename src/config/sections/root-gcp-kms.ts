// root.gcp_kms: the Google Cloud KMS key behind the gcp-kms root (key name, credentials, endpoint).
import type { Static } from '@sinclair/typebox';
import type { RefineContext } from '../field.js';
import { optional, section, str } from '../field.js';
import { pathField } from './common.js';

/** projects/P/locations/L/keyRings/R/cryptoKeys/K, with Cloud KMS's own character rules. */
export const GCP_KEY_NAME_PATTERN =
  /^projects\/[a-z0-9][a-z0-9.:-]{0,62}\/locations\/[a-z0-9-]{1,63}\/keyRings\/[A-Za-z0-9_-]{1,63}\/cryptoKeys\/[A-Za-z0-9_-]{1,63}$/;
const KEY_NAME_TEXT = 'a Cloud KMS key name like "projects/my-project/locations/europe-west1/keyRings/rustfs/cryptoKeys/kms-root"';
const ENDPOINT_TEXT = 'an https:// URL like "https://cloudkms.googleapis.com" (http:// only for a loopback address), with no path';

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(h);
}

/** An https origin, or an http origin on loopback only (requests carry a bearer token). */
export function gcpEndpoint(v: string, ctx: RefineContext): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    ctx.errors.fail(ctx.field, ENDPOINT_TEXT, v);
  }
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    ctx.errors.failDetail(ctx.field, ENDPOINT_TEXT,
      `expected ${ENDPOINT_TEXT}, got http://${url.host}: plain http is refused for a non-loopback host (bearer tokens and wrapped keys would cross the network unencrypted)`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') ctx.errors.fail(ctx.field, ENDPOINT_TEXT, v);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || url.pathname.replace(/\/+$/, '') !== '') {
    ctx.errors.fail(ctx.field, ENDPOINT_TEXT, v);
  }
  return `${url.protocol}//${url.host}`;
}
gcpEndpoint.expected = ENDPOINT_TEXT;

const SECRET_HINT_GCP = 'credentials_file or the GOOGLE_APPLICATION_CREDENTIALS environment variable (a service-account key file; no secrets in the config file)';

export const RootGcpKmsSection = section(
  {
    key_name: optional(str({
      pattern: GCP_KEY_NAME_PATTERN,
      expected: KEY_NAME_TEXT,
      docType: 'key resource name',
      docDefault: '**required** when `root.type` is `gcp-kms`',
      description: 'The symmetric Cloud KMS key that wraps master keys: `projects/P/locations/L/keyRings/R/cryptoKeys/K`. Cloud KMS uses its primary version to encrypt.',
    })),
    credentials_file: optional(pathField({
      description: 'Service-account key file (JSON). Must be private to the daemon\'s user. Unset: Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, or the metadata server on Google Cloud).',
      docDefault: 'Application Default Credentials',
    })),
    endpoint: optional(str({
      expected: ENDPOINT_TEXT,
      refine: gcpEndpoint,
      docType: 'URL',
      docDefault: '`https://cloudkms.googleapis.com`',
      description: 'Cloud KMS endpoint, for a Private Service Connect endpoint or tests. TLS is always verified; `http://` is accepted for a loopback address only.',
    })),
  },
  {
    description: 'Required, with `key_name`, when `root.type` is `gcp-kms` (Google Cloud KMS). Needs the optional package `@google-cloud/kms`.',
    hints: { private_key: SECRET_HINT_GCP, credentials: SECRET_HINT_GCP, credentials_json: SECRET_HINT_GCP },
  },
);

export interface GcpKmsConfig {
  keyName: string;
  credentialsFile?: string;
  /** Origin, no trailing slash; unset = the SDK's default endpoint. */
  endpoint?: string;
}

export type GcpKmsLayer = Partial<GcpKmsConfig>;

export function readRootGcpKms(s: Static<typeof RootGcpKmsSection>): GcpKmsLayer {
  const out: GcpKmsLayer = {};
  if (s.key_name !== undefined) out.keyName = s.key_name;
  if (s.credentials_file !== undefined) out.credentialsFile = s.credentials_file;
  if (s.endpoint !== undefined) out.endpoint = s.endpoint;
  return out;
}
