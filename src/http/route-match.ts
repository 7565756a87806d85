// Finds the route for a method and raw path: exact paths first, then routes whose last segment is a
// `{key_id}` parameter (RustFS's GET /kms/keys/{key_id}). The route table itself is routes.ts.
import { PREFIXES, routeIndex, type Route } from './routes.js';

export const PATH_PARAM = '{key_id}';

export type RouteMatch =
  | { kind: 'route'; route: Route; pathKey?: string }
  /** The path exists, not with this method: 405 with Allow. */
  | { kind: 'method'; allow: string[]; route: Route }
  | { kind: 'none' };

export class RouteMatcher {
  private readonly exact: Map<string, Route[]>;
  /** Full path up to and including the last '/' → routes with a trailing `{key_id}`. */
  private readonly param = new Map<string, Route[]>();

  constructor(routes: readonly Route[]) {
    this.exact = routeIndex(routes.filter((r) => !r.path.endsWith(PATH_PARAM)));
    for (const r of routes) {
      if (!r.path.endsWith(PATH_PARAM)) continue;
      const base = PREFIXES[r.prefix] + r.path.slice(0, -PATH_PARAM.length);
      this.param.set(base, [...(this.param.get(base) ?? []), r]);
    }
  }

  match(method: string, rawPath: string): RouteMatch {
    const exact = this.exact.get(rawPath);
    const hit = exact?.find((r) => (r.methods as readonly string[]).includes(method));
    if (hit !== undefined) return { kind: 'route', route: hit };
    const slash = rawPath.lastIndexOf('/');
    const segment = rawPath.slice(slash + 1);
    const params = segment === '' ? undefined : this.param.get(rawPath.slice(0, slash + 1));
    const withParam = params?.find((r) => (r.methods as readonly string[]).includes(method));
    if (withParam !== undefined) {
      let pathKey: string;
      try {
        pathKey = decodeURIComponent(segment);
      } catch {
        pathKey = segment; // the key id check names it
      }
      return { kind: 'route', route: withParam, pathKey };
    }
    const near = exact ?? params;
    if (near !== undefined && near.length > 0) return { kind: 'method', allow: near.flatMap((r) => r.methods), route: near[0] as Route };
    return { kind: 'none' };
  }
}
