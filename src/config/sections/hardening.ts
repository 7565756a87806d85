// hardening: process hardening beyond what the daemon always does.
import type { Static } from '@sinclair/typebox';
import { bool, optional, section, type CamelKeys } from '../field.js';

export const HardeningSection = section(
  {
    mlockall: optional(bool({
      default: false,
      description: 'Also `mlockall` the whole process, in addition to the key slots, which are always locked.',
    })),
  },
  { description: 'Extra process hardening.' },
);

export type HardeningConfig = CamelKeys<Required<Static<typeof HardeningSection>>>;
