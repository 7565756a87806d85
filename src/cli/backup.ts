// The backup format and restore logic live in src/keystore/backup.ts (the admin HTTP API's backup
// routes use them too); the CLI imports them from here.
export * from '../keystore/backup.js';
