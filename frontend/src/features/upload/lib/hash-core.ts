/** Streams a Blob (or a range of it) through SHA-256 in chunks: never the whole file in memory. */
import { createSHA256 } from 'hash-wasm';
import { Sha256 } from './sha256-js';

export const CHUNK_BYTES = 4 * 1024 * 1024;

interface Hasher {
  update(data: Uint8Array): unknown;
  digest(): string;
}

export type HashEngine = 'wasm' | 'js';

let engine: HashEngine | null = null;

/** hash-wasm when WebAssembly may be compiled here; the JS implementation otherwise. */
async function newHasher(): Promise<{ hasher: Hasher; engine: HashEngine }> {
  if (engine !== 'js') {
    try {
      const h = await createSHA256();
      h.init();
      engine = 'wasm';
      return { hasher: { update: (d) => h.update(d), digest: () => h.digest('hex') }, engine };
    } catch {
      engine = 'js';
    }
  }
  return { hasher: new Sha256(), engine: 'js' };
}

export async function hashBlob(
  blob: Blob,
  onProgress: (bytes: number) => void,
  isCancelled: () => boolean = () => false,
): Promise<{ sha256: string; engine: HashEngine }> {
  const { hasher, engine: used } = await newHasher();
  let done = 0;
  for (let offset = 0; offset < blob.size; offset += CHUNK_BYTES) {
    if (isCancelled()) throw new DOMException('hashing cancelled', 'AbortError');
    const chunk = new Uint8Array(await blob.slice(offset, Math.min(blob.size, offset + CHUNK_BYTES)).arrayBuffer());
    hasher.update(chunk);
    done += chunk.length;
    onProgress(done);
  }
  return { sha256: hasher.digest(), engine: used };
}
