import { useQuery } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';

/** `GET /api/stats`: counts by status, findings by severity, recent uploads (and denials for auditors). */
export function useStats() {
  return useQuery({
    queryKey: ['stats'],
    queryFn: ({ signal }) => apiClient.get('/api/stats', { signal }),
    refetchInterval: 30_000,
  });
}

/** `GET /api/scanner`: Trivy's version and the vulnerability DB's `UpdatedAt`. */
export function useScanner() {
  return useQuery({
    queryKey: ['scanner'],
    queryFn: ({ signal }) => apiClient.get('/api/scanner', { signal }),
    refetchInterval: 60_000,
  });
}

/** `GET /api/events/dead-letters` (callers who may read the audit log), newest first. */
export function useDeadLetters(enabled: boolean) {
  return useQuery({
    queryKey: ['dead-letters'],
    queryFn: ({ signal }) => apiClient.get('/api/events/dead-letters', { signal }),
    enabled,
    refetchInterval: 60_000,
  });
}
