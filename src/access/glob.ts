// The one glob matcher of the daemon (policy key globs, admin list patterns): `*` is any run of
// characters, `?` exactly one, everything else literal. Two pointers with a single star back-track
// point, so the work is O(pattern × text) at worst, whatever the pattern: a regular expression built
// from `*a*a*a*b` back-tracks exponentially on a long run of `a`s and would freeze the event loop.

/** The longest glob accepted from a client or the config; a longer one is refused naming this figure. */
export const MAX_GLOB_CHARS = 256;

/** Why a glob is refused, or undefined when it is usable (`what` names it, e.g. "pattern"). */
export function globProblem(glob: string, what: string): string | undefined {
  const chars = [...glob].length;
  return chars > MAX_GLOB_CHARS ? `${what} is ${chars} characters; the limit is ${MAX_GLOB_CHARS}` : undefined;
}

/** True when `text` matches `glob` as a whole. Characters are Unicode code points. */
export function globMatch(glob: string, text: string): boolean {
  return matchPoints(codePoints(glob), codePoints(text));
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** The string itself (indexable per character) unless it holds astral characters. */
function codePoints(s: string): ArrayLike<string> {
  return SURROGATE.test(s) ? [...s] : s;
}

function matchPoints(p: ArrayLike<string>, t: ArrayLike<string>): boolean {
  let pi = 0;
  let ti = 0;
  let starPi = -1; // pattern index just after the last `*` seen
  let starTi = 0; // text index that star is currently made to swallow up to
  while (ti < t.length) {
    const pc = p[pi];
    if (pc === '*') {
      starPi = ++pi;
      starTi = ti;
    } else if (pc !== undefined && (pc === '?' || pc === t[ti])) {
      pi++;
      ti++;
    } else if (starPi >= 0) {
      // Only the last star ever needs to swallow more: earlier stars' choices cannot help a later mismatch.
      pi = starPi;
      ti = ++starTi;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/** A compiled glob: the literal run before the first wildcard (for prefix scans) and the predicate. */
export interface Glob {
  readonly source: string;
  /** Characters before the first `*` or `?`; '' when the glob starts with one. */
  readonly literalPrefix: string;
  test(text: string): boolean;
}

export function compileGlob(glob: string): Glob {
  const wildcard = glob.search(/[*?]/);
  const literalPrefix = wildcard < 0 ? glob : glob.slice(0, wildcard);
  const points = codePoints(glob);
  return { source: glob, literalPrefix, test: (text) => matchPoints(points, codePoints(text)) };
}
