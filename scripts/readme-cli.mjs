// Rewrites the README's CLI table from the command table (src/cli/commands.ts, built into dist/).
// Run after changing a command: npm run docs:cli (test/cli/help.test.ts fails until you do).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withReadmeTable } from '../dist/src/cli/help.js';

const readme = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
writeFileSync(readme, withReadmeTable(readFileSync(readme, 'utf8')));
