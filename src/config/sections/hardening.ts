// hardening: process hardening beyond what the daemon always does. `mlockall` was removed: locking the
// whole process made V8 abort under light load; `false` (what it always meant by default) is still read.
import { Type, type Static } from '@sinclair/typebox';
import { annotate, optional, section, type CamelKeys } from '../field.js';

export const MLOCKALL_REMOVED =
  'was removed: locking the whole process made V8 abort under light load (its madvise(MADV_DONTNEED) fails with ' +
  'EINVAL on locked pages); key slots are always locked without it. Delete the setting (false is accepted)';

export const HardeningSection = section(
  {
    mlockall: optional(annotate(Type.Literal(false, {
      default: false,
      description: '**Removed.** `false` is still read (it changes nothing); `true` stops start-up with `config: hardening.mlockall: was removed: …`. Locking the whole process made V8 abort under light load: its `madvise(MADV_DONTNEED)` fails with `EINVAL` on locked pages. The key slots are always locked without it.',
    }), {
      expected: 'false or nothing',
      detail: (value) => (value === true ? MLOCKALL_REMOVED : undefined),
      docType: 'bool (only `false`)',
    })),
  },
  { description: 'Extra process hardening.' },
);

export type HardeningConfig = CamelKeys<Required<Static<typeof HardeningSection>>>;
