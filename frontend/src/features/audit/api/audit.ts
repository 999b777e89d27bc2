import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { apiClient, apiResponse } from '@/lib/api-client';
import type { AuditPage, AuditVerification } from '@/api/types';

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
    queryFn: ({ signal }) => apiClient.get<AuditPage>('/api/audit-logs', { ...filter, cursor: cursor ?? undefined, limit }, signal),
    placeholderData: keepPreviousData,
  });
}

export function useAuditVerification() {
  return useQuery({
    queryKey: ['audit', 'verify'],
    queryFn: ({ signal }) => apiClient.get<AuditVerification>('/api/audit-logs/verify', undefined, signal),
    staleTime: 60_000,
  });
}

/**
 * NDJSON export of the filtered log. The export needs the bearer token, which a plain
 * navigation cannot carry, so the answer is streamed into a file-backed Blob here; the
 * server has no signed export link yet (see README, "API gaps").
 */
export async function exportNdjson(filter: AuditFilter): Promise<void> {
  const response = await apiResponse('/api/audit-logs', { query: { ...filter, format: 'ndjson' }, headers: { Accept: 'application/x-ndjson' } });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `arca-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.ndjson`;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}
