import { formatDate, formatExactDate } from '@/lib/format';

/** A date in the browser's locale; the exact time on hover. */
export function DateTime({ ms, fallback = '—' }: { ms: number | null | undefined; fallback?: string }) {
  if (ms === null || ms === undefined) return <span>{fallback}</span>;
  return (
    <time dateTime={new Date(ms).toISOString()} title={formatExactDate(ms)}>
      {formatDate(ms)}
    </time>
  );
}
