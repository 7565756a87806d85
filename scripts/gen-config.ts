// npm run gen:config — writes config.schema.json and the reference tables of docs/configuration.md from
// the config schemas (src/config/sections/). --check only reports whether they are up to date (exit 1 if not).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_SCHEMA_FILE, configJsonSchemaText } from '../src/config/json-schema.js';
import { renderReference } from '../src/config/reference.js';

const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
const outputs: Array<[string, (current: string) => string]> = [
  [`${packageRoot}${CONFIG_SCHEMA_FILE}`, () => configJsonSchemaText()],
  [`${packageRoot}docs/configuration.md`, renderReference],
];

const checkOnly = process.argv.includes('--check');
let stale = 0;
for (const [file, generate] of outputs) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // a missing output is written (or, with --check, reported as stale)
  }
  const next = generate(current);
  if (next === current) continue;
  stale += 1;
  if (checkOnly) process.stderr.write(`gen-config: ${file} is out of date (run npm run gen:config)\n`);
  else {
    writeFileSync(file, next);
    process.stdout.write(`gen-config: wrote ${file}\n`);
  }
}
process.exit(checkOnly && stale > 0 ? 1 : 0);
