// Imported first by the daemon's entry point: V8's heap sizing for a long-lived daemon with a
// steady working set. --optimize-for-size keeps the heap near what is live (10,000 keys fit in
// DESIGN's 100 MiB) for a few percent of throughput (bench:scale and bench:rpc measure both).
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--optimize-for-size');
