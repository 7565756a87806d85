// How a refusal or failure looks on the wire. Each client family decodes its own error shape:
// this daemon's { code, message }; MinIO's JSON (madmin decodes Code/Message); S3-style XML
// (RustFS's `X` channel); plain text (RustFS's service-control routes); or a route's own JSON
// type with success:false (RustFS's `J` channel).
import { randomBytes } from 'node:crypto';
import { KmsError } from '../errors.js';

/** The answer's body: a route-specific JSON object for RustFS's `J` channel. */
export type JsonErrorBody = (err: KmsError, status: number) => Record<string, unknown>;

export type ErrorStyle = 'kms' | 'minio' | 'xml' | 'text' | JsonErrorBody;

export interface RenderedError {
  contentType: string;
  body: string;
}

/** S3 error codes RustFS answers in its XML channel, by HTTP status. */
function s3Code(err: KmsError, status: number): string {
  if (status === 403) return 'AccessDenied';
  if (status === 400) return err.code === 'InvalidRequest' ? 'InvalidRequest' : 'InvalidArgument';
  if (status === 404) return 'NoSuchKey';
  if (status === 405) return 'MethodNotAllowed';
  if (status === 413) return 'EntityTooLarge';
  if (status === 501) return 'NotImplemented';
  if (status === 503) return 'ServiceUnavailable';
  return 'InternalError';
}

/** MinIO's APIErrorResponse codes for what madmin's callers switch on; else the daemon's own code. */
function minioCode(err: KmsError, status: number): string {
  if (status === 403) return 'AccessDenied';
  if (status === 501) return 'NotImplemented';
  if (status === 405) return 'MethodNotAllowed';
  return err.code;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);
}

export function requestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

export function renderError(style: ErrorStyle, err: KmsError, status: number, resource: string): RenderedError {
  if (typeof style === 'function') {
    if (!(err instanceof InvalidJsonError)) return { contentType: 'application/json', body: JSON.stringify(style(err, status)) };
    style = 'xml';
  }
  switch (style) {
    case 'minio':
      return {
        contentType: 'application/json',
        body: JSON.stringify({ Code: minioCode(err, status), Message: err.message, Resource: resource, RequestId: requestId(), HostId: '' }),
      };
    case 'xml':
      return {
        contentType: 'application/xml',
        body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
          `<Code>${s3Code(err, status)}</Code><Message>${xmlEscape(err.message)}</Message>` +
          `<Resource>${xmlEscape(resource)}</Resource><RequestId>${requestId()}</RequestId></Error>`,
      };
    case 'text':
      return { contentType: 'text/plain; charset=utf-8', body: err.message };
    default:
      return { contentType: 'application/json', body: JSON.stringify({ code: err.code, message: err.message }) };
  }
}

/** Credential failures use XML where a route's own channel is `J` or `T` (RustFS's router does). */
export function authErrorStyle(style: ErrorStyle): ErrorStyle {
  return typeof style === 'function' || style === 'text' ? 'xml' : style;
}

/** A route this daemon answers on purpose with 501: the client's call has no meaning here. */
export class NotImplementedError extends KmsError {
  constructor(message: string) {
    super('InvalidRequest', message);
  }
}

/** A route's own argument was missing or malformed: 400 on every route, whatever its status map. */
export class ArgumentError extends KmsError {
  constructor(message: string) {
    super('InvalidRequest', message);
  }
}

/** The body is not the JSON the route takes: RustFS answers this in its XML channel even on J routes. */
export class InvalidJsonError extends ArgumentError {}
