import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { apiClient, navigateTo } from '@/lib/api-client';

export interface AuditFilter {
  actor: string;
  action: string;
  target: string;
  outcome: string;
  /** RFC 3339 or '' */
  since: string;
  until: string;
}

export function useAuditPage(filter: AuditFilter, cursor: string | null, limit: number) {
  return useQuery({
    queryKey: ['audit', filter, cursor, limit],
    queryFn: ({ signal }) => apiClient.get('/api/audit-logs', { query: { ...filter, cursor, limit }, signal }),
    placeholderData: keepPreviousData,
  });
}

export function useAuditVerification() {
  return useQuery({
    queryKey: ['audit', 'verify'],
    queryFn: ({ signal }) => apiClient.get('/api/audit-logs/verify', { signal }),
    staleTime: 60_000,
  });
}

/**
 * NDJSON export of the filtered log: a single-use link (`POST /api/audit-logs/export-link`,
 * valid 60 s) that the page navigates to, so the file streams to disk (never through page
 * memory) and the bearer token never appears in a URL.
 */
export async function exportNdjson(filter: AuditFilter): Promise<void> {
  const link = await apiClient.post('/api/audit-logs/export-link', { query: { ...filter } });
  navigateTo(link.url);
}
