import { describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { ApiProblem } from '@/lib/problem';
import { fillPath, type ApiCall } from '@/lib/api-client';
import { hashBlob } from './hash-core';
import { Sha256 } from './sha256-js';
import { resumeKey, UploadRun, type UploadDeps, type UploadState } from './upload-engine';

const MiB = 1024 * 1024;

function fileOf(size: number, name = 'tool-1.0.0.tar.gz'): File {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return new File([bytes], name, { lastModified: 1700000000000 });
}

interface CallArgs {
  params?: Record<string, string>;
  query?: Record<string, unknown>;
  body?: unknown;
}
type Route = (options: CallArgs) => unknown;

/** A scripted API: `routes['POST /api/artifacts/a1/complete']` → answer or thrown ApiProblem. */
function fakeApi(routes: Record<string, Route>) {
  const calls: string[] = [];
  const request = (async (method: string, path: string, options: CallArgs = {}) => {
    const key = `${method.toUpperCase()} ${fillPath(path, options.params)}`;
    calls.push(key);
    const route = routes[key];
    if (!route) throw new Error(`unexpected ${key}`);
    return route(options);
  }) as unknown as ApiCall;
  return { request, calls };
}

function deps(over: Partial<UploadDeps>): UploadDeps {
  const store = new Map<string, string>();
  return {
    hash: async (blob, onProgress) => {
      const { sha256 } = await hashBlob(blob, onProgress);
      return sha256;
    },
    put: async (_url, _headers, body, onProgress) => onProgress(body.size),
    request: async () => {
      throw new Error('no api');
    },
    sleep: async () => undefined,
    storage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => void store.set(k, v), removeItem: (k) => void store.delete(k) },
    now: () => Date.now(),
    pollMs: 0,
    partConcurrency: 3,
    partAttempts: 3,
    pollTimeoutMs: 60_000,
    ...over,
  };
}

const artifact = (status: string, extra: object = {}) => ({
  id: 'a1',
  name: 'tool',
  version: '1.0.0',
  filename: 'tool-1.0.0.tar.gz',
  size: 0,
  sha256: '',
  labels: {},
  description: '',
  status,
  status_reason: status === 'quarantined' ? 'secret found' : null,
  policy_reasons: [],
  owner_id: 'u1',
  created_at: 0,
  updated_at: 0,
  deleted_at: null,
  ...extra,
});

describe('hashing', () => {
  it('streams a file through SHA-256 in chunks, same digest as sha256sum', async () => {
    const file = fileOf(9 * MiB + 123);
    const progress: number[] = [];
    const { sha256 } = await hashBlob(file, (b) => progress.push(b));
    const expected = createHash('sha256').update(new Uint8Array(await file.arrayBuffer())).digest('hex');
    expect(sha256).toBe(expected);
    expect(progress.length).toBe(3); // 4 MiB chunks
    expect(progress.at(-1)).toBe(file.size);
  });

  it('the JS fallback (for a CSP without wasm-unsafe-eval) gives the same digests', () => {
    for (const size of [0, 1, 55, 56, 63, 64, 65, 1000, 100_000]) {
      const data = new Uint8Array(size).map((_, i) => (i * 13) & 0xff);
      const h = new Sha256();
      // fed in uneven pieces
      h.update(data.subarray(0, Math.floor(size / 3)));
      h.update(data.subarray(Math.floor(size / 3)));
      expect(h.digest()).toBe(createHash('sha256').update(data).digest('hex'));
    }
  });
});

describe('upload state machine', () => {
  it('single PUT: hash, create, send with the returned headers, complete, poll to approved', async () => {
    const file = fileOf(300_000);
    const sha = createHash('sha256').update(new Uint8Array(await file.arrayBuffer())).digest('hex');
    let polls = 0;
    let declared: Record<string, unknown> = {};
    const api = fakeApi({
      'POST /api/artifacts': (o) => {
        declared = o.body as Record<string, unknown>;
        return { ...artifact('pending_upload'), upload: { method: 'PUT', url: 'http://localhost:3000/api/uploads/tok', headers: { 'content-type': 'application/octet-stream' }, expires_at: 0 } };
      },
      'POST /api/artifacts/a1/complete': () => artifact('scanning'),
      'GET /api/artifacts/a1': () => artifact(++polls < 3 ? 'scanning' : 'approved'),
    });
    const put = vi.fn(async (_u: string, _h: Record<string, string>, body: Blob, onProgress: (n: number) => void) => {
      onProgress(body.size / 2);
      onProgress(body.size);
    });
    const phases: string[] = [];
    const run = new UploadRun({ file, name: 'tool', version: '1.0.0', labels: { os: 'linux' }, description: 'd' }, deps({ request: api.request, put }), (s: UploadState) => {
      if (phases.at(-1) !== s.phase) phases.push(s.phase);
    });
    const final = await run.run();
    expect(declared).toMatchObject({ name: 'tool', version: '1.0.0', filename: file.name, size: file.size, sha256: sha, labels: { os: 'linux' } });
    expect(put).toHaveBeenCalledTimes(1);
    expect(put.mock.calls[0]![1]).toEqual({ 'content-type': 'application/octet-stream' });
    expect(put.mock.calls[0]![2]).toBe(file);
    expect(phases).toEqual(['hashing', 'creating', 'uploading', 'completing', 'processing', 'done']);
    expect(final.artifact?.status).toBe('approved');
    expect(final.sent).toBe(file.size);
  });

  it('reports the quarantine reason', async () => {
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'PUT', url: '/api/uploads/t', headers: {}, expires_at: 0 } }),
      'POST /api/artifacts/a1/complete': () => artifact('scanning'),
      'GET /api/artifacts/a1': () => artifact('quarantined'),
    });
    const final = await new UploadRun({ file: fileOf(10), name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request }), () => undefined).run();
    expect(final.phase).toBe('done');
    expect(final.artifact?.status_reason).toBe('secret found');
  });

  it('multipart: per-part SHA-256, a few parts at a time, a failed part retried', async () => {
    const partSize = 1 * MiB;
    const file = fileOf(3 * MiB + 10);
    const partHashes = new Map<number, string>();
    let inFlight = 0;
    let maxInFlight = 0;
    const attempts = new Map<number, number>();
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'MULTIPART', url: '/api/artifacts/a1/parts', headers: {}, expires_at: 0, multipart: { part_size: partSize, part_count: 4 } } }),
      'GET /api/artifacts/a1/parts': () => ({ part_size: partSize, part_count: 4, uploaded: [] }),
      'POST /api/artifacts/a1/parts': (o) => {
        const [p] = (o.body as { parts: { number: number; sha256: string }[] }).parts;
        partHashes.set(p!.number, p!.sha256);
        return { parts: [{ number: p!.number, size: 0, method: 'PUT', url: `https://minio.example/part${p!.number}`, headers: { 'x-amz-checksum-sha256': 'x' }, expires_at: 0 }] };
      },
      'POST /api/artifacts/a1/complete': () => artifact('scanning'),
      'GET /api/artifacts/a1': () => artifact('approved'),
    });
    const put = vi.fn(async (url: string, _h: Record<string, string>, body: Blob, onProgress: (n: number) => void) => {
      const n = Number(url.slice(-1));
      attempts.set(n, (attempts.get(n) ?? 0) + 1);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight -= 1;
      if (n === 2 && attempts.get(n) === 1) throw new ApiProblem({ status: 0, code: 'network_error', title: 'x', detail: 'connection reset' });
      onProgress(body.size);
    });
    const final = await new UploadRun({ file, name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request, put }), () => undefined).run();
    expect(final.phase).toBe('done');
    expect(final.partsDone).toBe(4);
    expect(attempts.get(2)).toBe(2);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(1);
    const bytes = new Uint8Array(await file.arrayBuffer());
    for (let n = 1; n <= 4; n++) {
      const part = bytes.subarray((n - 1) * partSize, Math.min(file.size, n * partSize));
      expect(partHashes.get(n)).toBe(createHash('sha256').update(part).digest('hex'));
    }
    expect(final.sent).toBe(file.size);
  });

  it('resumes after a reload: skips the parts the store holds; keeps no token in sessionStorage', async () => {
    const partSize = 1 * MiB;
    const file = fileOf(3 * MiB);
    const d = deps({});
    // What the first attempt left behind.
    d.storage!.setItem(
      resumeKey(file, 'tool', '1.0.0'),
      JSON.stringify({ artifactId: 'a1', sha256: 'abc', name: 'tool', version: '1.0.0', fileName: file.name, size: file.size, lastModified: file.lastModified }),
    );
    const api = fakeApi({
      'GET /api/artifacts/a1': (() => {
        let n = 0;
        return () => artifact(++n === 1 ? 'pending_upload' : 'approved');
      })(),
      'POST /api/artifacts/a1/upload': () => ({ method: 'MULTIPART', url: '/api/artifacts/a1/parts', headers: {}, expires_at: 0, multipart: { part_size: partSize, part_count: 3 } }),
      'GET /api/artifacts/a1/parts': () => ({ part_size: partSize, part_count: 3, uploaded: [{ number: 1, size: partSize, sha256: 'x' }, { number: 3, size: partSize, sha256: 'y' }] }),
      'POST /api/artifacts/a1/parts': (o) => {
        const [p] = (o.body as { parts: { number: number }[] }).parts;
        return { parts: [{ number: p!.number, size: partSize, method: 'PUT', url: `https://s3/p${p!.number}`, headers: {}, expires_at: 0 }] };
      },
      // S3: the storage event completed it already.
      'POST /api/artifacts/a1/complete': () => {
        throw new ApiProblem({ status: 409, code: 'invalid_state', title: 'Conflict', detail: 'already scanning' });
      },
    });
    const hash = vi.fn(async (blob: Blob) => `h${blob.size}`);
    const put = vi.fn(async (_u: string, _h: Record<string, string>, body: Blob, onProgress: (n: number) => void) => onProgress(body.size));
    const final = await new UploadRun({ file, name: 'tool', version: '1.0.0', labels: {}, description: '' }, { ...d, request: api.request, put, hash }, () => undefined).run();
    expect(final.phase).toBe('done');
    expect(final.resumed).toBe(true);
    expect(put).toHaveBeenCalledTimes(1);
    expect(put.mock.calls[0]![0]).toBe('https://s3/p2');
    // The whole file was not hashed again, only the missing part.
    expect(hash).toHaveBeenCalledTimes(1);
    expect(api.calls).not.toContain('POST /api/artifacts');
    // Finished: the resume record is gone.
    expect(d.storage!.getItem(resumeKey(file, 'tool', '1.0.0'))).toBeNull();
  });

  it('single PUT retry: an interrupted PUT asks for a new URL (single use) and sends again', async () => {
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'PUT', url: '/api/uploads/first', headers: {}, expires_at: 0 } }),
      'POST /api/artifacts/a1/upload': () => ({ method: 'PUT', url: '/api/uploads/second', headers: {}, expires_at: 0 }),
      'POST /api/artifacts/a1/complete': () => artifact('scanning'),
      'GET /api/artifacts/a1': () => artifact('approved'),
    });
    const urls: string[] = [];
    const notes: string[] = [];
    const put = vi.fn(async (url: string, _h: Record<string, string>, body: Blob, onProgress: (n: number) => void) => {
      urls.push(url);
      if (urls.length === 1) {
        onProgress(body.size / 2);
        throw new ApiProblem({ status: 0, code: 'network_error', title: 'Upload interrupted', detail: 'reset' });
      }
      onProgress(body.size);
    });
    const final = await new UploadRun({ file: fileOf(1000), name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request, put }), (st) => {
      if (st.note && notes.at(-1) !== st.note) notes.push(st.note);
    }).run();
    expect(final.phase).toBe('done');
    expect(urls).toEqual(['/api/uploads/first', '/api/uploads/second']);
    expect(notes.some((n) => /retrying/.test(n))).toBe(true);
    expect(final.sent).toBe(1000);
  });

  it('a refusal that will not change (4xx) is not retried', async () => {
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'PUT', url: '/api/uploads/t', headers: {}, expires_at: 0 } }),
    });
    const put = vi.fn(async () => {
      throw new ApiProblem({ status: 400, code: 'size_mismatch', title: 'Bad request', detail: 'length differs' });
    });
    const final = await new UploadRun({ file: fileOf(10), name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request, put }), () => undefined).run();
    expect(final.phase).toBe('error');
    expect(put).toHaveBeenCalledTimes(1);
    expect(api.calls).not.toContain('POST /api/artifacts/a1/upload');
  });

  it('a 409 on complete for an artifact still verifying is an error', async () => {
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'PUT', url: '/api/uploads/t', headers: {}, expires_at: 0 } }),
      'POST /api/artifacts/a1/complete': () => {
        throw new ApiProblem({ status: 409, code: 'invalid_state', title: 'Conflict', detail: 'not uploaded' });
      },
      'GET /api/artifacts/a1': () => artifact('pending_upload'),
    });
    const final = await new UploadRun({ file: fileOf(10), name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request }), () => undefined).run();
    expect(final.phase).toBe('error');
    expect(final.error).toMatchObject({ code: 'invalid_state' });
  });

  it('cancel aborts the transfer', async () => {
    const api = fakeApi({
      'POST /api/artifacts': () => ({ ...artifact('pending_upload'), upload: { method: 'PUT', url: '/api/uploads/t', headers: {}, expires_at: 0 } }),
    });
    let run: UploadRun | null = null;
    const put = (_u: string, _h: Record<string, string>, _b: Blob, _p: (n: number) => void, signal: AbortSignal) =>
      new Promise<void>((_, reject) => {
        signal.addEventListener('abort', () => reject(new DOMException('cancelled', 'AbortError')));
        setTimeout(() => run!.cancel(), 5);
      });
    run = new UploadRun({ file: fileOf(10), name: 'tool', version: '1.0.0', labels: {}, description: '' }, deps({ request: api.request, put }), () => undefined);
    const final = await run.run();
    expect(final.phase).toBe('cancelled');
  });
});
