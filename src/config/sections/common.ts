// Field kinds used by several sections.
import type { TString } from '@sinclair/typebox';
import { str, type Annotated, type FieldMeta } from '../field.js';
import { ENV_NAME_PATTERN, filePath } from '../formats.js';

type PathOptions = Omit<FieldMeta, 'refine' | 'expected'> & { description: string };

/** A file system path: absolute and normalized after the check; relative ones resolve against the file's directory. */
export function pathField(o: PathOptions): Annotated<TString> {
  return str({ minLength: 1, expected: 'a file system path', docType: 'path', refine: filePath, ...o });
}

/** The name (never the value) of an environment variable that holds a secret. */
export function envNameField(o: { description: string; expected: string }): Annotated<TString> {
  return str({ pattern: ENV_NAME_PATTERN, docType: 'env var name', ...o });
}
