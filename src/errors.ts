// The protocol's error codes and the one error type every layer throws. It sits at the bottom of
// the tree so keys/ and keystore/ can speak in protocol codes without knowing about sockets.

export const ERROR_CODES = [
  'InvalidRequest',
  'UnknownOperation',
  'InvalidKeyId',
  'KeyNotFound',
  'KeyAlreadyExists',
  'KeyDisabled',
  'KeyPendingDeletion',
  'InvalidCiphertext',
  'AccessDenied',
  'FrameTooLarge',
  'Busy',
  'BackendUnavailable',
  'Internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && KNOWN_CODES.has(value);
}

/** A failure with a protocol error code; its message names the problem and never holds key material. */
export class KmsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'KmsError';
    this.code = code;
  }
}

export function isKmsError(value: unknown): value is KmsError {
  return value instanceof KmsError;
}
