import { useQuery } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import { isProblem } from '@/lib/problem';
import type { ArtifactPage, AuditPage, DeadLetter, ScannerInfo, Stats } from '@/api/types';
import { STATUSES } from '@/api/types';

/** Pending endpoints answer 404 on servers that do not have them yet: null then. */
async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (isProblem(e) && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

/**
 * `GET /api/stats`; on a server without it, the same picture from the endpoints that
 * exist (one count per status, the latest uploads, denials and dead letters from the
 * audit log when the caller may read it). Findings by severity need /api/stats.
 */
export function useStats(canAudit: boolean) {
  return useQuery({
    queryKey: ['stats', canAudit],
    queryFn: async ({ signal }): Promise<{ stats: Stats; complete: boolean }> => {
      const stats = await optional(apiClient.get<Stats>('/api/stats', undefined, signal));
      if (stats) return { stats, complete: true };
      const counts = await Promise.all(
        // A server without /api/stats predates the `signing` status (it refuses unknown ones).
        STATUSES.filter((s) => s !== 'signing').map((status) =>
          apiClient.get<ArtifactPage>('/api/artifacts', { status, per_page: 1 }, signal).then((p) => [status, p.total] as const),
        ),
      );
      const recent = await apiClient.get<ArtifactPage>('/api/artifacts', { per_page: 6 }, signal);
      let denials: Stats['recent_denials'] = null;
      let dead: number | null = null;
      if (canAudit) {
        const audit = await apiClient.get<AuditPage>('/api/audit-logs', { outcome: 'denied', limit: 6 }, signal);
        denials = audit.entries.map((e) => ({ ts: e.ts, actor: e.actor, action: e.action, target: e.target, client_ip: e.client_ip }));
        dead = (await apiClient.get<DeadLetter[]>('/api/events/dead-letters', undefined, signal)).length;
      }
      return {
        stats: {
          by_status: Object.fromEntries(counts),
          findings: { critical: 0, high: 0, medium: 0, low: 0, unknown: 0, secrets: 0, licenses: 0 },
          recent_uploads: recent.items,
          recent_denials: denials,
          dead_letters: dead,
        },
        complete: false,
      };
    },
    refetchInterval: 30_000,
  });
}

export function useScanner() {
  return useQuery({
    queryKey: ['scanner'],
    queryFn: ({ signal }) => optional(apiClient.get<ScannerInfo>('/api/scanner', undefined, signal)),
    refetchInterval: 60_000,
  });
}
