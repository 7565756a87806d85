// The backup format and restore logic live in src/ops/backup.ts (the admin HTTP API's backup routes
// use them too); the CLI imports them from here.
export * from '../ops/backup.js';
