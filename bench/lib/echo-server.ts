// Baseline for round trips: a bare Node echo server on a Unix socket. What the daemon's round trip
// costs beyond this is ours; the rest is the machine (process wake-ups, the socket, the event loop).
import { createServer } from 'node:net';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: echo-server.js SOCKET');
createServer((socket) => socket.on('data', (chunk) => socket.write(chunk))).listen(path, () => process.stdout.write('listening\n'));
