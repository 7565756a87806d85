// Where a benchmark's report goes: with --json, stdout carries only the one JSON line (scripts parse
// it) and the human report goes to stderr; without, the report is on stdout.
export const JSON_MODE = process.argv.includes('--json');

export function report(line = ''): void {
  (JSON_MODE ? process.stderr : process.stdout).write(line + '\n');
}

/** The JSON line: the only thing on stdout with --json. */
export function emitJson(value: unknown): void {
  process.stdout.write((typeof value === 'string' ? value : JSON.stringify(value)) + '\n');
}

/** a / b rounded to the 2 decimals the tables show, or null when b is not positive. */
export function shownRatio(a: number, b: number): number | null {
  return b > 0 ? Math.round((a / b) * 100) / 100 : null;
}

/** a meets factor × b as the table shows it (so "0.90×" never reads MISS against "≥ 0.9×"). */
export function meets(a: number, b: number, factor: number): boolean {
  const r = shownRatio(a, b);
  return r !== null && r >= factor;
}
