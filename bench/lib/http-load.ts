// HTTP/JSON load for bench:rpc: `sockets` keep-alive connections (one node:http Agent, maxSockets =
// sockets), one request in flight on each (HTTP/1.1 in node has no pipelining), each answer parsed
// (JSON.parse, base64 decode) and checked before the next request goes out on that socket.
import http from 'node:http';

export type JsonCheck = (body: Record<string, unknown>) => void;

export interface HttpTarget {
  host: string;
  port: number;
  path: string;
  body: Buffer;
}

export class HttpLoad {
  private readonly agent: http.Agent;
  responses = 0;
  private failure: Error | null = null;

  constructor(private readonly target: HttpTarget, readonly sockets: number, private readonly check: JsonCheck) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, scheduling: 'fifo' });
  }

  /** One request; resolves when its answer was parsed and checked. */
  private one(): Promise<void> {
    return new Promise((resolve, reject) => {
      const { host, port, path, body } = this.target;
      const req = http.request(
        {
          host, port, path, method: 'POST', agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
              if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
              this.check(JSON.parse(text) as Record<string, unknown>);
              this.responses++;
              resolve();
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `sockets` loops of one request at a time until keepGoing() turns false; rejects on any failure. */
  async run(keepGoing: () => boolean): Promise<number> {
    const start = this.responses;
    const loop = async (): Promise<void> => {
      while (keepGoing() && this.failure === null) await this.one();
    };
    await Promise.all(Array.from({ length: this.sockets }, () => loop().catch((err: Error) => {
      this.failure ??= err;
      throw err;
    })));
    return this.responses - start;
  }

  close(): void {
    this.agent.destroy();
  }
}
