import { useCallback, useEffect, useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { call } from '@/lib/api-client';
import { hashInWorker } from '../lib/hasher';
import { putWithXhr } from '../lib/put-blob';
import { initialState, sleepFor, UploadRun, type UploadDeps, type UploadInput, type UploadState } from '../lib/upload-engine';

export function browserUploadDeps(): UploadDeps {
  return {
    hash: hashInWorker,
    put: putWithXhr,
    request: call,
    sleep: sleepFor,
    storage: typeof sessionStorage !== 'undefined' ? sessionStorage : null,
    now: () => Date.now(),
    pollMs: 1000,
    partConcurrency: 3,
    partAttempts: 4,
    pollTimeoutMs: 15 * 60_000,
  };
}

/** One upload at a time: start, cancel, and its live state. */
export function useUpload(deps: UploadDeps = browserUploadDeps()) {
  const [state, setState] = useState<UploadState>(initialState());
  const run = useRef<UploadRun | null>(null);
  const queryClient = useQueryClient();
  const depsRef = useRef(deps);

  const start = useCallback(
    async (input: UploadInput) => {
      run.current?.cancel();
      const current = new UploadRun(input, depsRef.current, (s) => {
        if (run.current === current) setState(s);
      });
      run.current = current;
      const final = await current.run();
      void queryClient.invalidateQueries({ queryKey: ['artifacts'] });
      return final;
    },
    [queryClient],
  );

  const cancel = useCallback(() => run.current?.cancel(), []);
  const reset = useCallback(() => {
    run.current?.cancel();
    run.current = null;
    setState(initialState());
  }, []);

  // Leaving the page stops the upload (it resumes when started again with the same file).
  useEffect(() => () => run.current?.cancel(), []);

  return { state, start, cancel, reset };
}
