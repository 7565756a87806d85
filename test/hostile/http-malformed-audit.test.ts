// Issue 11, item 12b: requests the HTTP parser refuses (headers over the limit, a bad request line)
// are answered with the reason, their connection is closed, and they are audited through the audit
// log's aggregation of unidentified refusals: the first per source and parser error at once, the rest
// as one line with a `count` per interval (or at shutdown). Figures held here: a 20 KB header gets 431
// naming the 16384-byte limit; 100 bad requests from one source leave 2 lines (the first, then one
// counting the other 99).
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, waitFor } from '../helpers/daemon.js';
import { R, startAdminDaemon, within, type AdminDaemon } from './admin-daemon.js';

let d: AdminDaemon;

beforeAll(async () => {
  d = await startAdminDaemon();
});

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

/** Sends `data` from `localAddress` and collects everything until the daemon closes the connection. */
function exchange(data: string, localAddress: string): Promise<string> {
  return within(new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: d.port, localAddress });
    let text = '';
    s.setEncoding('utf8').on('data', (c: string) => (text += c));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(text) : reject(err)));
    s.on('close', () => resolve(text));
    s.write(data);
  }), 5000, `the daemon closing a malformed request from ${localAddress}`);
}

const linesFrom = (ip: string): Array<Record<string, unknown>> =>
  d.auditLines().filter((l) => l.op === 'admin_http' && (l.caller as { source_ip?: string }).source_ip === ip);

describe('malformed HTTP', () => {
  it('a 20 KB header gets 431 naming the 16384-byte limit, the connection is closed, and one audit line is written', async () => {
    const answer = await exchange(`GET ${R}/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, '127.0.0.2');
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      code: 'InvalidRequest', message: 'the request headers are over 16384 bytes; the limit is 16384',
    });
    await waitFor(() => linesFrom('127.0.0.2').length === 1, 3000, 'the audit line of the oversized header');
    expect(linesFrom('127.0.0.2')[0]).toMatchObject({
      transport: 'http', outcome: 'failure', error_code: 'InvalidRequest',
      claimed: { extra: { http_error: 'HPE_HEADER_OVERFLOW' } },
    });
    expect(linesFrom('127.0.0.2')[0]?.count).toBeUndefined(); // a first refusal stands for itself
  });

  it('a bad request line gets 400 and is audited under its own source', async () => {
    const answer = await exchange('NOT A REQUEST LINE\r\n\r\n', '127.0.0.3');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"code":"InvalidRequest"');
    await waitFor(() => linesFrom('127.0.0.3').length === 1, 3000, 'the audit line of the bad request line');
    expect(linesFrom('127.0.0.3')[0]).toMatchObject({ claimed: { extra: { http_error: 'HPE_INVALID_METHOD' } } });
  });

  it('100 bad requests from one source leave one line now and one counting the other 99 when the interval ends (here: at shutdown)', async () => {
    const before = d.auditLines().length;
    for (let i = 0; i < 100; i++) expect(await exchange('BAD\r\n\r\n', '127.0.0.4')).toMatch(/^HTTP\/1\.1 400 /);
    expect(linesFrom('127.0.0.4')).toHaveLength(1);
    expect(d.auditLines().length - before).toBe(1);
    expect((await d.send('GET', `${R}/status`)).status).toBe(200);
    expect(await d.daemon.stop()).toBe(0); // pending summaries are written at shutdown
    expect(linesFrom('127.0.0.4')).toHaveLength(2);
    expect(linesFrom('127.0.0.4')[1]).toMatchObject({ count: 99, claimed: { extra: { http_error: 'HPE_INVALID_METHOD' } } });
  });
});
