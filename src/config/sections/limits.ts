// limits: protocol and connection limits of the socket server.
import type { Static } from '@sinclair/typebox';
import { int, optional, section, type CamelKeys } from '../field.js';
import { BYTES, SECONDS } from '../formats.js';

export const LimitsSection = section(
  {
    max_frame_bytes: optional(int({
      min: 1024, max: 16_777_216, default: 1_048_576, expected: BYTES,
      description: 'Largest request frame. A larger frame gets `FrameTooLarge`, and the connection is closed.',
    })),
    max_connections: optional(int({ min: 1, max: 65_536, default: 1024, description: 'Maximum number of concurrent socket connections.' })),
    max_inflight_per_connection: optional(int({
      min: 1, max: 65_536, default: 256,
      description: 'Maximum number of pipelined requests in flight on one connection.',
    })),
    idle_timeout_s: optional(int({
      min: 0, max: 86_400, default: 300, expected: SECONDS,
      description: 'An idle connection is closed after this many seconds. `0` means never.',
    })),
    drain_timeout_s: optional(int({
      min: 0, max: 3600, default: 10, expected: SECONDS,
      description: 'On `SIGTERM`, how long to wait for in-flight requests to finish before exiting.',
    })),
    max_buffered_bytes: optional(int({
      min: 1024, max: 4_294_967_296, default: 67_108_864, expected: BYTES,
      description: 'Bytes of partial frames (announced, not yet complete) that **all connections together** may hold. A partial frame grows with the bytes that have arrived, not with its announced length. A connection whose bytes would pass the limit gets `Busy` (`… the limit is N (limits.max_buffered_bytes)`) and is closed. Must be at least `limits.max_frame_bytes`.',
    })),
    frame_timeout_s: optional(int({
      min: 1, max: 3600, default: 10, expected: SECONDS,
      description: 'A frame that has started must complete within this many seconds, however slowly its bytes arrive (each byte renews the idle timeout, not this one). Otherwise the connection gets `InvalidRequest` naming `limits.frame_timeout_s` and is closed.',
    })),
  },
  { description: 'Protocol and connection limits.' },
);

export type LimitsConfig = CamelKeys<Required<Static<typeof LimitsSection>>>;
