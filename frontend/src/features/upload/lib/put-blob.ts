/**
 * One HTTP PUT of a Blob with upload progress (XMLHttpRequest: fetch reports none).
 * The Blob is a File or a slice of one: the browser streams it from disk.
 */
import { ApiProblem } from '@/lib/problem';

export type PutFn = (
  url: string,
  headers: Record<string, string>,
  body: Blob,
  onProgress: (sentBytes: number) => void,
  signal: AbortSignal,
) => Promise<void>;

/** Headers a browser sets itself and refuses from scripts. */
const FORBIDDEN = new Set(['content-length', 'host', 'connection', 'expect', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function parseError(status: number, text: string): ApiProblem {
  try {
    const doc = JSON.parse(text) as { code?: string; title?: string; detail?: string };
    return new ApiProblem({ status, code: doc.code ?? `http_${status}`, title: doc.title ?? 'Upload refused', detail: doc.detail ?? '' });
  } catch {
    // An object store answers XML: <Code>…</Code><Message>…</Message>
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
    return new ApiProblem({
      status,
      code: code ? `store_${code}` : `http_${status}`,
      title: 'Upload refused by the store',
      detail: message ?? (text.slice(0, 300) || `HTTP ${status}`),
    });
  }
}

export const putWithXhr: PutFn = (url, headers, body, onProgress, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(new DOMException('cancelled', 'AbortError'));
      return;
    }
    const xhr = new XMLHttpRequest();
    // Arca's own upload URLs (local store) are absolute, built from X-Forwarded-Proto/Host
    // when a trusted proxy sends them; S3's are presigned for the store's public origin.
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers)) {
      if (!FORBIDDEN.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size);
        resolve();
      } else reject(parseError(xhr.status, xhr.responseText));
    };
    xhr.onerror = () =>
      reject(new ApiProblem({ status: 0, code: 'network_error', title: 'Upload interrupted', detail: 'The connection was lost while sending the bytes.' }));
    xhr.onabort = () => reject(new DOMException('cancelled', 'AbortError'));
    signal.addEventListener('abort', () => xhr.abort());
    xhr.send(body);
  });
