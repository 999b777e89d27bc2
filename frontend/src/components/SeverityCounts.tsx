import Box from '@mui/material/Box';
import Tooltip from '@mui/material/Tooltip';
import type { SeverityCounts as Counts } from '@/api/types';

export const SEVERITY_COLORS: Record<string, string> = {
  critical: '#b71c1c',
  high: '#e65100',
  medium: '#f9a825',
  low: '#1565c0',
  unknown: '#616161',
};

const KEYS: { key: keyof Counts; short: string; label: string }[] = [
  { key: 'critical', short: 'C', label: 'critical' },
  { key: 'high', short: 'H', label: 'high' },
  { key: 'medium', short: 'M', label: 'medium' },
  { key: 'low', short: 'L', label: 'low' },
  { key: 'secrets', short: 'S', label: 'secrets' },
];

/** Compact counts: C 1 · H 3 · … with a full sentence for screen readers. */
export function SeverityCounts({ counts }: { counts: Counts | null | undefined }) {
  if (!counts)
    return (
      <span title="not scanned">
        <span aria-hidden>—</span>
        <span className="visually-hidden">not scanned</span>
      </span>
    );
  const shown = KEYS.filter(({ key }) => counts[key] > 0);
  const sentence = KEYS.map(({ key, label }) => `${counts[key]} ${label}`).join(', ');
  if (shown.length === 0)
    return (
      <Tooltip title={sentence}>
        <span>none</span>
      </Tooltip>
    );
  return (
    <Box component="span" role="img" aria-label={sentence} title={sentence} sx={{ display: 'inline-flex', gap: 0.5, flexWrap: 'wrap' }}>
      {shown.map(({ key, short }) => (
        <Box
          key={key}
          component="span"
          aria-hidden
          sx={{
            px: 0.6,
            borderRadius: 1,
            fontSize: '0.75rem',
            fontWeight: 600,
            color: '#fff',
            bgcolor: key === 'secrets' ? '#6a1b9a' : SEVERITY_COLORS[key],
            ...(key === 'medium' ? { color: '#000' } : {}),
          }}
        >
          {short} {counts[key]}
        </Box>
      ))}
    </Box>
  );
}
