// Header names that are also Object.prototype members must not pass as "sent": a request that
// signs "constructor" is refused as a bad signature (403), not a crash (500).
import { describe, expect, it } from 'vitest';
import { parseAuthorization, parseQuery, SignatureError } from '../../src/http/sigv4.js';

const creds = { accessKey: 'admin', secretKey: 'secret', region: 'us-east-1' };

describe('SignedHeaders naming prototype members', () => {
  for (const name of ['constructor', 'tostring', 'hasownproperty', '__proto__']) {
    it(`"${name}" is reported as a signed header that is not in the request`, () => {
      const now = Date.UTC(2026, 10, 27, 6, 0, 0);
      const amzDate = '20261127T060000Z';
      const headers = {
        host: '127.0.0.1:9000',
        'x-amz-date': amzDate,
        'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        authorization: `AWS4-HMAC-SHA256 Credential=admin/20261127/us-east-1/s3/aws4_request, SignedHeaders=${name};host;x-amz-date, Signature=${'0'.repeat(64)}`,
      };
      let caught: unknown;
      try {
        parseAuthorization(headers, parseQuery(''), creds, now);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SignatureError);
      expect((caught as Error).message).toContain('is not in the request');
    });
  }
});
