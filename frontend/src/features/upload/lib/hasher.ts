/** Main-thread side of the hash worker. */
import type { HashReply } from './hash.worker';

export type HashFn = (blob: Blob, onProgress: (bytes: number) => void, signal?: AbortSignal) => Promise<string>;

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, { resolve: (v: string) => void; reject: (e: unknown) => void; onProgress: (b: number) => void }>();

function getWorker(): Worker {
  if (worker) return worker;
  worker = new Worker(new URL('./hash.worker.ts', import.meta.url), { type: 'module', name: 'arca-hash' });
  worker.onmessage = (event: MessageEvent<HashReply>) => {
    const reply = event.data;
    const job = pending.get(reply.id);
    if (!job) return;
    if (reply.type === 'progress') job.onProgress(reply.bytes);
    else {
      pending.delete(reply.id);
      if (reply.type === 'done') job.resolve(reply.sha256);
      else job.reject(new Error(`hashing failed: ${reply.message}`));
    }
  };
  worker.onerror = (event) => {
    const error = new Error(`hash worker failed: ${event.message}`);
    pending.forEach((job) => job.reject(error));
    pending.clear();
    worker = null;
  };
  return worker;
}

/** SHA-256 (hex) of a Blob, computed in the worker. */
export const hashInWorker: HashFn = (blob, onProgress, signal) =>
  new Promise<string>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('cancelled', 'AbortError'));
      return;
    }
    const id = nextId++;
    const w = getWorker();
    pending.set(id, { resolve, reject, onProgress });
    signal?.addEventListener('abort', () => {
      if (!pending.has(id)) return;
      pending.delete(id);
      w.postMessage({ cancel: id });
      reject(new DOMException('cancelled', 'AbortError'));
    });
    w.postMessage({ id, blob });
  });
