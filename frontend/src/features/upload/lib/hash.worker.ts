/// <reference lib="webworker" />
/** The hash worker: SHA-256 of a Blob range, streamed in chunks, progress reported. */
import { hashBlob } from './hash-core';

export interface HashRequest {
  id: number;
  blob: Blob;
}
export type HashReply =
  | { id: number; type: 'progress'; bytes: number }
  | { id: number; type: 'done'; sha256: string; engine: string }
  | { id: number; type: 'error'; message: string };

const cancelled = new Set<number>();
const scope = self as unknown as DedicatedWorkerGlobalScope;

scope.onmessage = (event: MessageEvent<HashRequest | { cancel: number }>) => {
  const data = event.data;
  if ('cancel' in data) {
    cancelled.add(data.cancel);
    return;
  }
  const { id, blob } = data;
  let last = 0;
  hashBlob(
    blob,
    (bytes) => {
      const now = performance.now();
      if (now - last > 100 || bytes === blob.size) {
        last = now;
        scope.postMessage({ id, type: 'progress', bytes } satisfies HashReply);
      }
    },
    () => cancelled.has(id),
  )
    .then(({ sha256, engine }) => scope.postMessage({ id, type: 'done', sha256, engine } satisfies HashReply))
    .catch((e: unknown) =>
      scope.postMessage({ id, type: 'error', message: e instanceof Error ? e.message : String(e) } satisfies HashReply),
    )
    .finally(() => cancelled.delete(id));
};
