// docs/protocol.md must not drift from the code: every hex dump in it is re-encoded here with the
// codec (and the context/envelope helpers) and compared byte for byte, and the op and error-code
// lists are checked against protocol.ts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeFrame } from '../../src/rpc/codec.js';
import { DEFAULT_MAX_FRAME_BYTES, ERROR_CODES, OPERATIONS } from '../../src/ops/protocol.js';
import { canonicalContext } from '../../src/crypto/context.js';
import { parseEnvelope } from '../../src/crypto/envelope.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');

const bytes = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => from + i));
const envelope = Buffer.concat([
  Buffer.from([0x01, 0x01, 14]),
  Buffer.from('rustfs-default'),
  Buffer.from([0, 0, 0, 1]),
  bytes(0xa0, 24), // nonce
  bytes(0x40, 32), // sealed data key
  bytes(0xf0, 16), // tag
]);

/** The value behind every `<!-- frame: NAME -->` dump of the document. */
const FRAMES: Record<string, unknown> = {
  'health-request': { id: 1, op: 'health', args: {} },
  'health-response': { id: 1, ok: true, result: { healthy: true, backend: 'local/file', version: '0.1.0' } },
  'generate-data-key-request': {
    id: 2,
    op: 'generate_data_key',
    args: { key_id: 'rustfs-default', context: { bucket: 'photos' } },
    ctx: { request_id: 'req-42' },
  },
  'generate-data-key-response': {
    id: 2,
    ok: true,
    result: { plaintext: bytes(0x00, 32), ciphertext: envelope, key_id: 'rustfs-default', key_version: 1 },
  },
  'error-response': { id: 3, ok: false, error: { code: 'KeyNotFound', message: 'key nope does not exist' } },
};

interface Block {
  kind: string;
  arg: string;
  lang: string;
  text: string;
  /** Where the marker comment starts. */
  at: number;
}

/** Every `<!-- kind: arg -->` comment directly followed by a fenced block. */
function markedBlocks(): Block[] {
  const re = /<!-- ([a-z-]+): (.*?) -->\n```([a-z]+)\n([\s\S]*?)\n```/g;
  return [...doc.matchAll(re)].map((m) => ({ kind: m[1] as string, arg: m[2] as string, lang: m[3] as string, text: m[4] as string, at: m.index ?? 0 }));
}

/** Parses `offset  hex bytes` lines, checking that the offsets run on without gaps. */
function parseDump(text: string): Buffer {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{8}) {2}((?:[0-9a-f]{2} {1,2})*[0-9a-f]{2})$/.exec(line);
    expect(m, `dump line ${JSON.stringify(line)}`).not.toBeNull();
    expect(Number.parseInt((m as RegExpExecArray)[1] as string, 16), line).toBe(out.length);
    for (const b of ((m as RegExpExecArray)[2] as string).split(/ +/)) out.push(Number.parseInt(b, 16));
  }
  return Buffer.from(out);
}

describe('docs/protocol.md', () => {
  const blocks = markedBlocks();

  it('has a hex dump for every example frame, and every dump is exactly encodeFrame of its value', () => {
    const frames = blocks.filter((b) => b.kind === 'frame');
    expect(frames.map((b) => b.arg).sort()).toEqual(Object.keys(FRAMES).sort());
    for (const b of frames) {
      expect(b.lang).toBe('hex');
      const expected = encodeFrame(FRAMES[b.arg]);
      expect(parseDump(b.text).toString('hex'), b.arg).toBe(expected.toString('hex'));
      expect(decodeMessage(expected.subarray(4)), b.arg).toEqual(FRAMES[b.arg]);
    }
  });

  it('states each example value in the text exactly as encoded (where it is JSON)', () => {
    for (const b of blocks.filter((x) => x.kind === 'frame')) {
      // the last inline code span before the dump that starts with "{"
      const before = doc.slice(0, b.at);
      const spans = [...before.matchAll(/`(\{[^`]*\})`/g)];
      const span = spans.at(-1)?.[1] as string;
      let stated: unknown;
      try {
        stated = JSON.parse(span);
      } catch {
        continue; // values with binary parts are described in words
      }
      expect(stated, b.arg).toEqual(FRAMES[b.arg]);
    }
  });

  it('annotates the first example byte by byte, covering every byte of the frame', () => {
    const annotated = blocks.filter((b) => b.kind === 'annotated');
    expect(annotated.map((b) => b.arg)).toEqual(['health-request']);
    const rows = (annotated[0] as Block).text.split('\n').slice(1); // first row is the header
    const hexBytes = rows.map((r) => {
      const [left, right] = r.split('|');
      expect(right?.trim(), r).not.toBe('');
      expect(left, r).toMatch(/^([0-9a-f]{2} )+\s*$/);
      return (left as string).trim().replace(/ /g, '');
    });
    expect(hexBytes.join('')).toBe(encodeFrame(FRAMES['health-request']).toString('hex'));
  });

  it('shows the canonical context encoding as the crypto module computes it', () => {
    const canon = blocks.filter((b) => b.kind === 'canonical-context');
    expect(canon).toHaveLength(1);
    const b = canon[0] as Block;
    const context = JSON.parse(b.arg) as Record<string, string>;
    expect(parseDump(b.text).toString('hex')).toBe(canonicalContext(context).toString('hex'));
  });

  it('uses a well-formed envelope v1 in the generate_data_key example', () => {
    const result = (FRAMES['generate-data-key-response'] as { result: { ciphertext: Buffer } }).result;
    const header = parseEnvelope(result.ciphertext);
    expect(header).toEqual({ algorithm: 1, keyId: 'rustfs-default', keyVersion: 1, headerLength: 21, plaintextLength: 32 });
    expect(result.ciphertext.length).toBe(93);
    expect(doc).toContain('93 bytes for a 32-byte data key under a 14-byte key id');
    expect(doc).toContain(`canonical(\`{"bucket":"photos"}\`) =\n\`${canonicalContext({ bucket: 'photos' }).toString('hex').match(/../g)?.join(' ')}\``);
  });

  it('documents every operation and every error code', () => {
    const headings = [...doc.matchAll(/^### (.*)$/gm)].map((m) => m[1] as string).join(' ');
    for (const op of OPERATIONS) expect(headings, op).toContain(`\`${op}\``);
    for (const code of ERROR_CODES) expect(doc, code).toMatch(new RegExp(`^\\| \`${code}\` \\|`, 'm'));
    expect(doc).toContain(DEFAULT_MAX_FRAME_BYTES.toLocaleString('en-US'));
  });

  it('copies the envelope table of DESIGN §5 faithfully', () => {
    const table = [
      'offset  size  field',
      '0       1     format version = 0x01',
      '1       1     algorithm: 0x01 XAES-256-GCM (24-byte nonce) · 0x02 AES-256-GCM (12-byte nonce; pkcs11 on-token keys only)',
      '2       1     n = length of key id (1..128)',
      '3       n     key id, UTF-8',
      '3+n     4     key version, uint32 big-endian',
      '7+n     m     nonce (random; m = 24 or 12 by algorithm)',
      '7+n+m   …     ciphertext',
      'end-16  16    tag',
      'AAD = bytes [0, 7+n+m)  ‖  canonical(context)',
      'canonical(context) = for each pair sorted by key bytes: u16be(len k) ‖ k ‖ u16be(len v) ‖ v   (empty map → empty)',
    ].join('\n');
    expect(doc).toContain(table);
  });
});
