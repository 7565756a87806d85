// cache: how long unwrapped key material stays in locked memory.
import type { Static } from '@sinclair/typebox';
import { int, optional, section, type CamelKeys } from '../field.js';
import { SECONDS } from '../formats.js';

export const CacheSection = section(
  {
    idle_ttl_s: optional(int({
      min: 0, max: 604_800, default: 300, expected: SECONDS,
      description: 'Unwrapped key material that has not been used for this long is wiped. `0` wipes it right after use.',
    })),
    offline_ttl_s: optional(int({
      min: 0, max: 604_800, default: 3600, expected: SECONDS,
      description: 'How long cached keys keep serving while the root is unreachable. `0` means no offline serving.',
    })),
  },
  { description: 'Cache of unwrapped keys.' },
);

export type CacheConfig = CamelKeys<Required<Static<typeof CacheSection>>>;
