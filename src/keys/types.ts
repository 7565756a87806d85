// What the key service hands out. Binary fields are Buffers; times are epoch milliseconds.
import type { KeyOrigin, KeyState } from '../keystore/types.js';
import type { EncryptionContext } from '../crypto/context.js';

export type { KeyOrigin, KeyState, EncryptionContext };

export interface KeyInfo {
  keyId: string;
  state: KeyState;
  currentVersion: number;
  versions: number;
  /** XAES-256-GCM, or AES-256-GCM for versions that live on a PKCS#11 token. */
  algorithm: 'XAES-256-GCM' | 'AES-256-GCM';
  origin: KeyOrigin;
  createdAt: number;
  rotatedAt?: number;
  deletionDate?: number;
  rotationPeriodDays?: number;
  description: string;
  tags: Record<string, string>;
}

export interface CreateKeyOptions {
  description?: string;
  tags?: Record<string, string>;
  rotationPeriodDays?: number;
}

export interface ListKeysOptions {
  prefix?: string;
  marker?: string;
  limit?: number;
  /** Only keys this accepts are listed (and counted against the limit). */
  filter?: (keyId: string) => boolean;
}

export interface ListKeysResult {
  keys: KeyInfo[];
  nextMarker?: string;
  truncated: boolean;
}

export interface SealResult {
  ciphertext: Buffer;
  keyId: string;
  keyVersion: number;
}

export interface OpenResult {
  plaintext: Buffer;
  keyId: string;
  keyVersion: number;
}

export interface DataKeyResult {
  plaintext?: Buffer;
  ciphertext: Buffer;
  keyId: string;
  keyVersion: number;
}

export interface DataKeyBatchResult {
  keyId: string;
  keyVersion: number;
  keys: { plaintext: Buffer; ciphertext: Buffer }[];
}

export interface DataKeyOptions {
  context?: EncryptionContext;
  bytes?: number;
  withoutPlaintext?: boolean;
}

/** What a key-service call may return: a value when served from cache, a promise otherwise. */
export type Maybe<T> = T | Promise<T>;
