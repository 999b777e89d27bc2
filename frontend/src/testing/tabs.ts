/** Fakes of the Web Locks API and BroadcastChannel shared by several "tabs" in one test. */
import type { ChannelLike, LockManagerLike } from '@/lib/session';

export class FakeLocks implements LockManagerLike {
  private tail: Promise<unknown> = Promise.resolve();
  held = 0;
  request<T>(_name: string, callback: () => Promise<T>): Promise<T> {
    const run = this.tail.then(async () => {
      this.held += 1;
      try {
        return await callback();
      } finally {
        this.held -= 1;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

export class FakeChannelHub {
  private members = new Set<FakeChannel>();
  join(): FakeChannel {
    const c = new FakeChannel(this);
    this.members.add(c);
    return c;
  }
  deliver(from: FakeChannel, message: unknown) {
    const data = structuredClone(message);
    for (const m of this.members) if (m !== from && !m.closed) setTimeout(() => m.emit(data), 0);
  }
  leave(c: FakeChannel) {
    this.members.delete(c);
  }
}

export class FakeChannel implements ChannelLike {
  closed = false;
  private listeners: ((e: MessageEvent) => void)[] = [];
  constructor(private hub: FakeChannelHub) {}
  postMessage(message: unknown) {
    this.hub.deliver(this, message);
  }
  addEventListener(_type: 'message', listener: (event: MessageEvent) => void) {
    this.listeners.push(listener);
  }
  emit(data: unknown) {
    this.listeners.forEach((l) => l({ data } as MessageEvent));
  }
  close() {
    this.closed = true;
    this.hub.leave(this);
  }
}
