// Refused connections (Busy at the connection limit, FrameTooLarge, an incomplete frame, …): each gets
// its one answer, then is cut once the kernel has taken it, or, for a peer that may still be sending
// (drain), once it closes; either way after a deadline at most, whether or not the peer reads or
// closes. A bounded number wait at once, so a flood cannot pile up refused fds.
import type { Socket } from 'node:net';
import type { Logger } from '../logging.js';

export class Refusals {
  private pending = 0;
  private shed = 0;

  constructor(
    private readonly logger: Logger,
    readonly deadlineMs = 1000,
    readonly maxPending = 64,
  ) {}

  /** Refusals whose answer or deadline is still awaited. */
  get pendingCount(): number {
    return this.pending;
  }

  /**
   * Sends `answer` (if the bound allows), half-closes, and destroys the socket after the flush or the
   * deadline. With drainMs, what the peer still sends is read and dropped until it closes (a client
   * mid-frame is not reset before it has read the answer), for drainMs at most.
   */
  refuse(socket: Socket, answer: Buffer, drainMs?: number): void {
    socket.on('error', () => socket.destroy()); // EPIPE from a peer that already left is expected here
    if (socket.destroyed) return;
    if (this.pending >= this.maxPending) {
      // Over the bound: no answer, no wait; a peer flooding us learns from the closed socket.
      if (this.shed++ % 1000 === 0) this.logger.warn({ pending: this.pending, shed: this.shed }, 'refused connections cut without an answer: too many refusals pending');
      socket.destroy();
      return;
    }
    this.pending += 1;
    const timer = setTimeout(() => socket.destroy(), drainMs ?? this.deadlineMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.pending -= 1;
    });
    if (drainMs === undefined) {
      // 'finish' = the answer and the FIN reached the kernel: nothing more to say or to wait for.
      socket.once('finish', () => socket.destroy());
    } else {
      socket.once('end', () => socket.destroy());
      socket.resume(); // read and drop what the peer still sends (a socket accepted paused included)
    }
    socket.end(answer);
  }
}
