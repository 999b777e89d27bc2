import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import { isProblem } from '@/lib/problem';
import type { NewException, NewPublisherSignature } from '@/api/types';
import { FINAL_STATUSES } from '@/api/types';

export const detailKeys = {
  artifact: (id: string) => ['artifacts', 'detail', id] as const,
  scan: (id: string) => ['artifacts', 'detail', id, 'scan'] as const,
  signature: (id: string) => ['artifacts', 'detail', id, 'signature'] as const,
  publisher: (id: string) => ['artifacts', 'detail', id, 'publisher-signatures'] as const,
  events: (id: string) => ['artifacts', 'detail', id, 'events'] as const,
};

/** The artifact; polled while it is still moving through the lifecycle. */
export function useArtifact(id: string) {
  return useQuery({
    queryKey: detailKeys.artifact(id),
    queryFn: ({ signal }) => apiClient.get('/api/artifacts/{id}', { params: { id }, signal }),
    refetchInterval: (q) => (q.state.data && !FINAL_STATUSES.includes(q.state.data.status) ? 2000 : false),
  });
}

export function useScanResults(id: string, enabled: boolean, updatedAt: number | undefined) {
  return useQuery({
    queryKey: [...detailKeys.scan(id), updatedAt],
    queryFn: ({ signal }) => apiClient.get('/api/artifacts/{id}/scan-results', { params: { id }, signal }),
    enabled,
  });
}

export function useSignature(id: string, enabled: boolean) {
  return useQuery({
    queryKey: detailKeys.signature(id),
    queryFn: ({ signal }) => apiClient.get('/api/artifacts/{id}/signature', { params: { id }, signal }),
    enabled,
  });
}

export function usePublisherSignatures(id: string) {
  return useQuery({
    queryKey: detailKeys.publisher(id),
    queryFn: ({ signal }) => apiClient.get('/api/artifacts/{id}/signatures', { params: { id }, signal }),
  });
}

/** The status timeline: the artifact's lifecycle events, oldest first. */
export function useEvents(id: string, updatedAt: number | undefined) {
  return useQuery({
    queryKey: [...detailKeys.events(id), updatedAt],
    queryFn: ({ signal }) => apiClient.get('/api/artifacts/{id}/events', { params: { id }, signal }),
  });
}

function useInvalidate(id: string) {
  const qc = useQueryClient();
  return () => qc.invalidateQueries({ queryKey: ['artifacts'] }).then(() => qc.invalidateQueries({ queryKey: detailKeys.artifact(id) }));
}

/**
 * A single-use download link. A refusal because the artifact is no longer approved
 * (`not_approved`: e.g. a policy re-check quarantined it since the page loaded) refetches
 * the artifact, so the page shows its status and the policy's reasons.
 */
export function useDownloadLink(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => apiClient.post('/api/artifacts/{id}/download-link', { params: { id } }),
    onError: (e) => {
      if (isProblem(e) && e.code === 'not_approved') void qc.invalidateQueries({ queryKey: detailKeys.artifact(id) });
    },
  });
}

export function useRescan(id: string) {
  const invalidate = useInvalidate(id);
  return useMutation({ mutationFn: () => apiClient.post('/api/artifacts/{id}/rescan', { params: { id } }), onSuccess: invalidate });
}

export function useRelease(id: string) {
  const invalidate = useInvalidate(id);
  return useMutation({
    mutationFn: (justification: string) => apiClient.post('/api/artifacts/{id}/release', { params: { id }, body: { justification } }),
    onSuccess: invalidate,
  });
}

export function useDelete(id: string) {
  const invalidate = useInvalidate(id);
  return useMutation({ mutationFn: () => apiClient.delete('/api/artifacts/{id}', { params: { id } }), onSuccess: invalidate });
}

/** An exception re-evaluates the artifacts it covers at once: their queries are refetched. */
export function useCreateException() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewException) => apiClient.post('/api/exceptions', { body }),
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: ['exceptions'] }), qc.invalidateQueries({ queryKey: ['artifacts'] })]),
  });
}

export function useAttachSignature(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewPublisherSignature) => apiClient.post('/api/artifacts/{id}/signatures', { params: { id }, body }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: detailKeys.publisher(id) });
      void qc.invalidateQueries({ queryKey: detailKeys.artifact(id) });
    },
  });
}

