/**
 * The browser side of the upload contract (the CLI's `arca push` does the same):
 * hash → create → PUT or multipart (per-part SHA-256, a few parts at a time, a failed part
 * retried, resume from `GET …/parts`) → complete → poll until a final status.
 * Plain TypeScript with injected I/O so that it is tested without a browser.
 */
import type { Artifact, UploadTarget } from '@/api/types';
import { FINAL_STATUSES } from '@/api/types';
import { ApiProblem, isProblem } from '@/lib/problem';
import type { ApiCall } from '@/lib/api-client';
import type { HashFn } from './hasher';
import type { PutFn } from './put-blob';

export type UploadPhase =
  | 'idle'
  | 'hashing'
  | 'creating'
  | 'uploading'
  | 'completing'
  | 'processing'
  | 'done'
  | 'error'
  | 'cancelled';

export interface UploadInput {
  file: File;
  name: string;
  version: string;
  labels: Record<string, string>;
  description: string;
}

export interface UploadState {
  phase: UploadPhase;
  total: number;
  hashed: number;
  sent: number;
  /** Bytes per second over the last few seconds. */
  speed: number | null;
  /** Seconds left at that speed. */
  eta: number | null;
  partCount: number | null;
  partsDone: number;
  resumed: boolean;
  artifact: Artifact | null;
  error: ApiProblem | Error | null;
  note: string | null;
}

export interface UploadDeps {
  hash: HashFn;
  put: PutFn;
  /** The typed API client's `call` (a fake in tests). */
  request: ApiCall;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null;
  now: () => number;
  pollMs: number;
  partConcurrency: number;
  partAttempts: number;
  /** Stop polling after this long (the artifact keeps going on the server). */
  pollTimeoutMs: number;
}

export const initialState = (total = 0): UploadState => ({
  phase: 'idle',
  total,
  hashed: 0,
  sent: 0,
  speed: null,
  eta: null,
  partCount: null,
  partsDone: 0,
  resumed: false,
  artifact: null,
  error: null,
  note: null,
});

export const RESUME_PREFIX = 'arca.upload.';

/** What sessionStorage keeps to resume after a reload: never a token or URL. */
export interface ResumeRecord {
  artifactId: string;
  sha256: string;
  name: string;
  version: string;
  fileName: string;
  size: number;
  lastModified: number;
}

export function resumeKey(file: File, name: string, version: string): string {
  return `${RESUME_PREFIX}${name}@${version}:${file.name}:${file.size}:${file.lastModified}`;
}

export function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new DOMException('cancelled', 'AbortError'));
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('cancelled', 'AbortError'));
    });
  });
}

const PAST_VERIFYING = new Set(['scanning', 'signing', 'approved', 'quarantined', 'failed']);

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

export class UploadRun {
  state: UploadState;
  private controller = new AbortController();
  private samples: { t: number; bytes: number }[] = [];

  constructor(
    private input: UploadInput,
    private deps: UploadDeps,
    private onChange: (state: UploadState) => void,
  ) {
    this.state = initialState(input.file.size);
  }

  cancel(): void {
    this.controller.abort();
  }

  private update(next: Partial<UploadState>) {
    this.state = { ...this.state, ...next };
    this.onChange(this.state);
  }

  private get signal() {
    return this.controller.signal;
  }

  private sentBytes(sent: number) {
    const now = this.deps.now();
    this.samples.push({ t: now, bytes: sent });
    while (this.samples.length > 2 && now - this.samples[0]!.t > 5_000) this.samples.shift();
    const first = this.samples[0]!;
    const elapsed = (now - first.t) / 1000;
    const speed = elapsed > 0.2 ? (sent - first.bytes) / elapsed : this.state.speed;
    const eta = speed && speed > 0 ? (this.state.total - sent) / speed : null;
    this.update({ sent, speed, eta });
  }

  async run(): Promise<UploadState> {
    try {
      const { artifactId, target } = await this.prepare();
      this.update({ phase: 'uploading' });
      if (target.method === 'MULTIPART') await this.putParts(artifactId, target);
      else await this.putWhole(artifactId, target);
      await this.complete(artifactId);
      this.forget();
      await this.poll(artifactId);
    } catch (e) {
      if (isAbort(e) || this.signal.aborted) {
        this.update({ phase: 'cancelled', note: 'Upload cancelled. Start it again with the same file to resume.' });
      } else {
        this.update({ phase: 'error', error: e instanceof Error ? e : new Error(String(e)) });
      }
    }
    return this.state;
  }

  // ---- create or resume ---------------------------------------------------------
  private async prepare(): Promise<{ artifactId: string; target: UploadTarget }> {
    const { file, name, version } = this.input;
    const key = resumeKey(file, name, version);
    const saved = this.readResume(key);
    if (saved) {
      const resumed = await this.tryResume(saved.artifactId);
      if (resumed) {
        this.resumeKeyInUse = key;
        return resumed;
      }
      this.deps.storage?.removeItem(key);
    }
    this.update({ phase: 'hashing' });
    const sha256 = await this.deps.hash(file, (hashed) => this.update({ hashed }), this.signal);
    this.update({ phase: 'creating', hashed: file.size });
    let created;
    try {
      created = await this.deps.request('post', '/api/artifacts', {
        signal: this.signal,
        body: {
          name,
          version,
          filename: file.name,
          size: file.size,
          sha256,
          labels: this.input.labels,
          description: this.input.description,
        },
      });
    } catch (e) {
      // Same name@version declared earlier with the same bytes and never finished: resume it.
      if (isProblem(e) && e.status === 409) {
        const existing = await this.findExisting();
        if (existing && existing.status === 'pending_upload' && existing.sha256 === sha256) {
          this.remember(key, existing.id, sha256);
          const resumed = await this.tryResume(existing.id);
          if (resumed) return resumed;
        }
      }
      throw e;
    }
    this.remember(key, created.id, sha256);
    const { upload, ...artifact } = created;
    this.update({ artifact });
    return { artifactId: created.id, target: upload };
  }

  private async findExisting(): Promise<Artifact | null> {
    const page = await this.deps.request('get', '/api/artifacts', {
      query: { name: this.input.name, version: this.input.version, per_page: 5 },
      signal: this.signal,
    });
    return page.items.find((a) => a.name === this.input.name && a.version === this.input.version) ?? null;
  }

  private async tryResume(artifactId: string): Promise<{ artifactId: string; target: UploadTarget } | null> {
    let artifact: Artifact;
    try {
      artifact = await this.deps.request('get', '/api/artifacts/{id}', { params: { id: artifactId }, signal: this.signal });
    } catch (e) {
      if (isProblem(e) && (e.status === 404 || e.status === 403)) return null;
      throw e;
    }
    if (artifact.status !== 'pending_upload' && artifact.status !== 'uploading') return null;
    const target = await this.deps.request('post', '/api/artifacts/{id}/upload', { params: { id: artifactId }, signal: this.signal });
    this.update({ artifact, resumed: true, hashed: this.input.file.size, note: 'Resuming an earlier upload of this file.' });
    return { artifactId, target };
  }

  private readResume(key: string): ResumeRecord | null {
    try {
      const raw = this.deps.storage?.getItem(key);
      return raw ? (JSON.parse(raw) as ResumeRecord) : null;
    } catch {
      return null;
    }
  }

  private remember(key: string, artifactId: string, sha256: string) {
    const { file, name, version } = this.input;
    const record: ResumeRecord = { artifactId, sha256, name, version, fileName: file.name, size: file.size, lastModified: file.lastModified };
    try {
      this.deps.storage?.setItem(key, JSON.stringify(record));
    } catch {
      // storage full or disabled: no resume, upload goes on
    }
    this.resumeKeyInUse = key;
  }

  private resumeKeyInUse: string | null = null;

  private forget() {
    if (this.resumeKeyInUse) this.deps.storage?.removeItem(this.resumeKeyInUse);
  }

  // ---- bytes ----------------------------------------------------------------------
  private async putWhole(artifactId: string, first: UploadTarget) {
    let target = first;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.put(target.url, target.headers, this.input.file, (sent) => this.sentBytes(sent), this.signal);
        return;
      } catch (e) {
        if (isAbort(e) || attempt >= this.deps.partAttempts || !retryable(e)) throw e;
        this.update({ note: `Upload interrupted; retrying (attempt ${attempt + 1} of ${this.deps.partAttempts}).`, sent: 0 });
        await this.deps.sleep(backoff(attempt), this.signal);
        // The single-use URL may be spent: ask for a new one.
        target = await this.deps.request('post', '/api/artifacts/{id}/upload', { params: { id: artifactId }, signal: this.signal });
      }
    }
  }

  private async putParts(artifactId: string, target: UploadTarget) {
    const file = this.input.file;
    // What the store holds already (resume), and the plan when the target does not carry it.
    const status = await this.deps.request('get', '/api/artifacts/{id}/parts', { params: { id: artifactId }, signal: this.signal });
    const plan = target.multipart ?? status;
    const partSize = plan.part_size;
    const partCount = plan.part_count;
    const sizeOf = (n: number) => Math.min(partSize, file.size - (n - 1) * partSize);
    const held = new Set(status.uploaded.filter((p) => p.size === sizeOf(p.number)).map((p) => p.number));
    const inFlight = new Map<number, number>();
    let doneBytes = 0;
    for (const n of held) doneBytes += sizeOf(n);
    const report = () => {
      let sent = doneBytes;
      inFlight.forEach((b) => (sent += b));
      this.sentBytes(sent);
    };
    this.update({ partCount, partsDone: held.size, resumed: this.state.resumed || held.size > 0 });
    report();
    const queue: number[] = [];
    for (let n = 1; n <= partCount; n++) if (!held.has(n)) queue.push(n);
    let failure: unknown = null;
    const worker = async () => {
      while (queue.length > 0 && failure === null) {
        const number = queue.shift()!;
        try {
          await this.putPart(artifactId, number, partSize, (b) => {
            inFlight.set(number, b);
            report();
          });
          inFlight.delete(number);
          doneBytes += sizeOf(number);
          this.update({ partsDone: this.state.partsDone + 1 });
          report();
        } catch (e) {
          inFlight.delete(number);
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.partConcurrency, Math.max(1, queue.length)) }, worker));
    if (failure !== null) throw failure;
  }

  private async putPart(artifactId: string, number: number, partSize: number, onBytes: (b: number) => void) {
    const file = this.input.file;
    const start = (number - 1) * partSize;
    const blob = file.slice(start, Math.min(file.size, start + partSize));
    const sha256 = await this.deps.hash(blob, () => undefined, this.signal);
    for (let attempt = 1; ; attempt++) {
      try {
        const targets = await this.deps.request('post', '/api/artifacts/{id}/parts', {
          params: { id: artifactId },
          body: { parts: [{ number, sha256 }] },
          signal: this.signal,
        });
        const target = targets.parts[0];
        if (!target) throw new Error(`no upload target for part ${number}`);
        onBytes(0);
        await this.deps.put(target.url, target.headers, blob, onBytes, this.signal);
        return;
      } catch (e) {
        if (isAbort(e) || attempt >= this.deps.partAttempts || !retryable(e)) throw e;
        onBytes(0);
        this.update({ note: `Part ${number} failed; retrying (attempt ${attempt + 1} of ${this.deps.partAttempts}).` });
        await this.deps.sleep(backoff(attempt), this.signal);
      }
    }
  }

  // ---- complete and watch -----------------------------------------------------------
  private async complete(artifactId: string) {
    this.update({ phase: 'completing', sent: this.state.total, eta: 0, note: null });
    try {
      const artifact = await this.deps.request('post', '/api/artifacts/{id}/complete', { params: { id: artifactId }, signal: this.signal });
      this.update({ artifact });
    } catch (e) {
      // On S3 the storage event may have completed it already.
      if (isProblem(e) && e.status === 409) {
        const artifact = await this.deps.request('get', '/api/artifacts/{id}', { params: { id: artifactId }, signal: this.signal });
        if (PAST_VERIFYING.has(artifact.status)) {
          this.update({ artifact });
          return;
        }
      }
      throw e;
    }
  }

  private async poll(artifactId: string) {
    this.update({ phase: 'processing' });
    const deadline = this.deps.now() + this.deps.pollTimeoutMs;
    for (;;) {
      const artifact = await this.deps.request('get', '/api/artifacts/{id}', { params: { id: artifactId }, signal: this.signal });
      this.update({ artifact });
      if (FINAL_STATUSES.includes(artifact.status)) {
        this.update({ phase: 'done' });
        return;
      }
      if (this.deps.now() > deadline) {
        this.update({ phase: 'done', note: `Still ${artifact.status}; the artifact page shows when it is done.` });
        return;
      }
      await this.deps.sleep(this.deps.pollMs, this.signal);
    }
  }
}

function retryable(e: unknown): boolean {
  if (!isProblem(e)) return true;
  return e.status === 0 || e.status >= 500 || e.status === 408 || e.status === 429 || e.code === 'upload_url_expired' || e.code === 'upload_url_used' || e.code === 'upload_interrupted';
}

function backoff(attempt: number): number {
  return Math.min(8_000, 500 * 2 ** (attempt - 1));
}
