// A raw protocol client that runs INSIDE the boot (the daemon refuses peers from another PID
// namespace: SO_PEERCRED reports them as pid 0). Plain .mjs on msgpackr, so it needs no build.
//
//   node wire-client.mjs load SOCKET KEY      pipelined generate_data_key on 4 connections; prints
//                                             "ready" after 2000 answers, then a JSON summary once
//                                             the daemon has closed every connection
//   node wire-client.mjs session SOCKET       one connection; each stdin line is an op name to call;
//                                             prints each answer as JSON
import net from 'node:net';
import { createInterface } from 'node:readline';
import { Packr, Unpackr } from 'msgpackr';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ int64AsType: 'number', useRecords: false, mapsAsObjects: true });

function request(id, op, args) {
  const body = packr.pack(args === undefined ? { id, op } : { id, op, args });
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

function open(path, onFrame) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path });
    let buf = Buffer.alloc(0);
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        onFrame(unpackr.unpack(buf.subarray(4, 4 + n)));
        buf = buf.subarray(4 + n);
      }
    });
    s.once('error', reject);
    s.once('connect', () => {
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

async function load(path, key) {
  let ok = 0;
  let announced = false;
  const conns = await Promise.all([0, 1, 2, 3].map(async (i) => {
    const c = { sent: [], answers: new Map(), closed: false };
    c.sock = await open(path, (f) => {
      c.answers.set(f.id, f.ok === true ? 'ok' : f.error?.code ?? '?');
      if (f.ok === true) ok += 1;
      if (!announced && ok >= 2000) {
        announced = true;
        process.stdout.write('ready\n');
      }
    });
    c.done = new Promise((r) => c.sock.once('close', () => { c.closed = true; r(); }));
    c.next = (i + 1) * 1_000_000;
    return c;
  }));
  await Promise.all(conns.map(async (c) => {
    while (!c.closed) {
      if (c.sent.length - c.answers.size < 512) {
        const frames = [];
        for (let k = 0; k < 32; k++) {
          c.sent.push(c.next);
          frames.push(request(c.next++, 'generate_data_key', { key_id: key }));
        }
        c.sock.write(Buffer.concat(frames));
      }
      await new Promise((r) => setImmediate(r));
    }
    await c.done;
  }));
  const codes = {};
  let unansweredBeforeAnswered = 0;
  for (const c of conns) {
    for (const v of c.answers.values()) codes[v] = (codes[v] ?? 0) + 1;
    // What went unanswered must be the tail of the sending order (never read by the daemon).
    const first = c.sent.findIndex((id) => !c.answers.has(id));
    if (first >= 0) unansweredBeforeAnswered += c.sent.slice(first).filter((id) => c.answers.has(id)).length;
  }
  process.stdout.write(`${JSON.stringify({ codes, unansweredBeforeAnswered, sent: conns.reduce((n, c) => n + c.sent.length, 0) })}\n`);
}

async function session(path) {
  let id = 0;
  const sock = await open(path, (f) => process.stdout.write(`${JSON.stringify(f)}\n`));
  sock.once('close', () => process.exit(0));
  process.stdout.write('connected\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== '') sock.write(request(++id, line.trim()));
  }
  sock.end();
}

const [mode, path, key] = process.argv.slice(2);
if (mode === 'load') await load(path, key);
else if (mode === 'session') await session(path);
else {
  process.stderr.write('usage: wire-client.mjs load SOCKET KEY | session SOCKET\n');
  process.exit(2);
}
