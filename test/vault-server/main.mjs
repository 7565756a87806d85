#!/usr/bin/env node
// Runs the Vault API TEST SERVER (server.ts, not Vault) as its own process:
//
//   node test/vault-server/main.mjs [--port N] [--host H] [--root-token T]
//                                   [--tls-cert F --tls-key F [--client-ca F]]
//
// It prints one JSON line {"address": ..., "root_token": ...} on stdout once it listens, then takes
// fault switches as lines on stdin: down | up | delay MS | fail N [STATUS] | seal | unseal |
// expire-tokens | requests (prints the recorded requests as one JSON line). It exits on SIGTERM or
// when stdin closes.
//
// server.ts is TypeScript with only node: imports; it is transpiled (types stripped) with the
// project's own TypeScript into a temporary file and imported from there, so no build step is needed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'root-token': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'client-ca': { type: 'string' },
  },
  strict: true,
});

const source = readFileSync(join(here, 'server.ts'), 'utf8');
const { outputText } = ts.transpileModule(source, {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  fileName: 'server.ts',
});
const dir = mkdtempSync(join(tmpdir(), 'vault-test-server-'));
const file = join(dir, 'server.mjs');
writeFileSync(file, outputText);
const { VaultTestServer } = await import(pathToFileURL(file).href);
rmSync(dir, { recursive: true, force: true });

const tls = values['tls-cert'] !== undefined
  ? {
      cert: readFileSync(values['tls-cert']),
      key: readFileSync(values['tls-key']),
      ...(values['client-ca'] !== undefined ? { clientCa: readFileSync(values['client-ca']) } : {}),
    }
  : undefined;
const server = new VaultTestServer({
  ...(values.port !== undefined ? { port: Number(values.port) } : {}),
  ...(values.host !== undefined ? { host: values.host } : {}),
  ...(values['root-token'] !== undefined ? { rootToken: values['root-token'] } : {}),
  ...(tls !== undefined ? { tls } : {}),
});
await server.start();
process.stdout.write(JSON.stringify({ address: server.address, root_token: server.rootToken }) + '\n');

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [cmd, a, b] = line.trim().split(/\s+/);
  const done = (extra = {}) => process.stdout.write(JSON.stringify({ ok: cmd, ...extra }) + '\n');
  switch (cmd) {
    case 'down': void server.down().then(() => done()); break;
    case 'up': void server.up().then(() => done()); break;
    case 'delay': server.delayMs = Number(a ?? 0); done(); break;
    case 'fail': server.failNext(Number(a ?? 1), Number(b ?? 503)); done(); break;
    case 'seal': server.sealed = true; done(); break;
    case 'unseal': server.sealed = false; done(); break;
    case 'expire-tokens': done({ expired: server.expireTokens() }); break;
    case 'requests': done({ requests: server.requests }); break;
    case '': break;
    default: process.stdout.write(JSON.stringify({ error: `unknown command ${cmd}` }) + '\n');
  }
});
lines.on('close', () => void stop());
