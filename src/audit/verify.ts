// Checks audit files in order: every line parses, seq counts up by one, and every prev is the
// SHA-256 of the line before it. The first failure is reported with its file and line number.
// A removed last line leaves no trace inside the files themselves; compare against the daemon's
// reported head (`rustfs-kms status`) with `head` to catch that too.
import { readFileSync } from 'node:fs';
import { GENESIS, lineHash } from './chain.js';

export interface VerifyFailure {
  file: string;
  /** 1-based line number within the file. */
  line: number;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  records: number;
  firstSeq?: number;
  lastSeq?: number;
  lastHash?: string;
  failure?: VerifyFailure;
}

const HEX64 = /^[0-9a-f]{64}$/;

export interface VerifyOptions {
  /** The daemon's newest line (from `status`): catches lines removed from, or edited at, the end. */
  head?: { seq: number; hash: string };
  /**
   * Where a segment starts when older files were archived: the first line must have this seq (and
   * this prev, when given). Without it the chain must start at seq 1 with the genesis prev, so lines
   * removed from the start are caught too.
   */
  from?: { seq: number; prev?: string };
}

export function verifyAuditFiles(paths: readonly string[], options: VerifyOptions = {}): VerifyResult {
  const { head, from } = options;
  let records = 0;
  let firstSeq: number | undefined;
  let expectedSeq: number | undefined;
  let expectedPrev: string | undefined;
  let previous: { file: string; line: number } | undefined;
  const fail = (file: string, line: number, message: string): VerifyResult => ({
    ok: false, records, ...(firstSeq !== undefined ? { firstSeq } : {}), failure: { file, line, message },
  });

  for (const file of paths) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return fail(file, 0, `cannot read: ${(err as Error).message}`);
    }
    if (text.length === 0) continue;
    const lines = text.split('\n');
    const torn = lines.pop() !== '';
    for (let i = 0; i < lines.length; i++) {
      const n = i + 1;
      const line = lines[i] as string;
      let record: { seq?: unknown; prev?: unknown; op?: unknown };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        return fail(file, n, 'is not valid JSON (edited or damaged)');
      }
      const { seq, prev } = record;
      if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1) return fail(file, n, 'has no valid seq');
      if (typeof prev !== 'string' || !HEX64.test(prev)) return fail(file, n, 'has no valid prev hash');
      if (typeof record.op !== 'string') return fail(file, n, 'has no op');
      if (expectedSeq === undefined) {
        firstSeq = seq;
        const startSeq = from?.seq ?? 1;
        const startPrev = from === undefined ? GENESIS : from.prev;
        if (seq !== startSeq) {
          const hint = from === undefined ? '; lines were removed from the start (or pass --from SEQ to verify a later segment)' : '';
          return fail(file, n, `has seq ${seq}; the chain should start at seq ${startSeq}${hint}`);
        }
        if (startPrev !== undefined && prev !== startPrev) {
          return fail(file, n, `is seq ${seq} but its prev is not ${from === undefined ? 'the genesis hash' : 'the given --from hash'}`);
        }
      } else if (seq !== expectedSeq) {
        const what = seq > expectedSeq ? `${seq - expectedSeq} line(s) before it were removed` : 'lines were reordered or repeated';
        return fail(file, n, `has seq ${seq}; expected ${expectedSeq} (${what})`);
      } else if (prev !== expectedPrev) {
        const where = previous === undefined ? 'the previous line' : `${previous.file} line ${previous.line}`;
        return fail(file, n, `does not chain: its prev is not the SHA-256 of ${where}, so that line (or this one's prev) was edited`);
      }
      records += 1;
      expectedSeq = seq + 1;
      expectedPrev = lineHash(line);
      previous = { file, line: n };
    }
    if (torn) return fail(file, lines.length + 1, 'is incomplete (torn write or truncation)');
  }
  const lastSeq = expectedSeq === undefined ? undefined : expectedSeq - 1;
  if (head !== undefined) {
    if (lastSeq === undefined || lastSeq < head.seq) {
      return fail(paths[paths.length - 1] ?? '', 0, `ends at seq ${lastSeq ?? 0} but the daemon's head is seq ${head.seq}: lines were removed from the end`);
    }
    if (lastSeq === head.seq && expectedPrev !== head.hash) {
      return fail(paths[paths.length - 1] ?? '', 0, `the last line (seq ${lastSeq}) does not hash to the daemon's head: it was edited`);
    }
  }
  return {
    ok: true, records,
    ...(firstSeq !== undefined ? { firstSeq } : {}),
    ...(lastSeq !== undefined ? { lastSeq } : {}),
    ...(expectedPrev !== undefined ? { lastHash: expectedPrev } : {}),
  };
}
