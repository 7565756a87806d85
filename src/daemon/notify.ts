// systemd's notify protocol, when $NOTIFY_SOCKET is set; silent otherwise.
import { native } from '../native/index.js';

export function notify(message: string): boolean {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return false;
  try {
    native.sdNotify(socket, message);
    return true;
  } catch {
    return false;
  }
}
