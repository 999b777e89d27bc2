import { useMemo, useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import LinearProgress from '@mui/material/LinearProgress';
import MenuItem from '@mui/material/MenuItem';
import Paper from '@mui/material/Paper';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import Tooltip from '@mui/material/Tooltip';
import Typography from '@mui/material/Typography';
import VerifiedIcon from '@mui/icons-material/Verified';
import GppBadIcon from '@mui/icons-material/GppBad';
import { DateTime } from '@/components/DateTime';
import { EmptyState, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { exportNdjson, useAuditPage, useAuditVerification, type AuditFilter } from '../api/audit';

const EMPTY: AuditFilter = { actor: '', action: '', target: '', outcome: '', since: '', until: '' };

function toRfc3339(local: string): string {
  return local ? new Date(local).toISOString() : '';
}

/** RFC 3339 → the `datetime-local` input's value, in the browser's time zone. */
function toLocalInput(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

const KEYS = Object.keys(EMPTY) as (keyof AuditFilter)[];

/** The applied filter lives in the URL, so that a filtered view can be shared. */
function useUrlFilter(): [AuditFilter, (f: AuditFilter) => void] {
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => Object.fromEntries(KEYS.map((k) => [k, params.get(k) ?? ''])) as unknown as AuditFilter, [params]);
  const set = (f: AuditFilter) => setParams(new URLSearchParams(Object.entries(f).filter(([, v]) => v !== '')), { replace: true });
  return [filter, set];
}

function ChainBadge() {
  const { data, error, isPending } = useAuditVerification();
  if (isPending) return <Chip label="verifying the chain…" />;
  if (error) return <ProblemAlert error={error} />;
  if (!data) return null;
  return data.valid ? (
    <Tooltip title={`Head ${data.head}`}>
      <Chip icon={<VerifiedIcon />} color="success" label={`Chain verified: ${data.entries} entries`} />
    </Tooltip>
  ) : (
    <Chip icon={<GppBadIcon />} color="error" label={`Chain BROKEN at entry ${data.first_invalid?.seq ?? '?'}: ${data.first_invalid?.reason ?? ''}`} />
  );
}

export function AuditPage() {
  const [filter, setFilter] = useUrlFilter();
  const [form, setForm] = useState<AuditFilter>(() => ({ ...filter, since: toLocalInput(filter.since), until: toLocalInput(filter.until) }));
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const cursor = cursors[cursors.length - 1] ?? null;
  const { data, error, isFetching } = useAuditPage(filter, cursor, 50);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilter({ ...form, since: toRfc3339(form.since), until: toRfc3339(form.until) });
    setCursors([null]);
  };
  const field = (key: keyof AuditFilter, label: string, extra: object = {}) => (
    <TextField size="small" label={label} value={form[key]} onChange={(e) => setForm({ ...form, [key]: e.target.value })} {...extra} />
  );

  return (
    <>
      <PageHeader
        title="Audit log"
        subtitle="Every action, hash-chained: a changed or missing entry breaks the chain."
        actions={
          <>
            <ChainBadge />
            <Button
              variant="outlined"
              disabled={exporting}
              onClick={() => {
                setExporting(true);
                setExportError(null);
                exportNdjson(filter)
                  .catch(setExportError)
                  .finally(() => setExporting(false));
              }}
            >
              {exporting ? 'Exporting…' : 'Export NDJSON'}
            </Button>
          </>
        }
      />
      <ProblemAlert error={exportError} />
      <Paper component="form" variant="outlined" onSubmit={apply} sx={{ p: 2, mb: 2 }} aria-label="Filter the audit log">
        <Box sx={{ display: 'flex', gap: 2, flexWrap: 'wrap', alignItems: 'center' }}>
          {field('actor', 'Actor')}
          {field('action', 'Action', { placeholder: 'e.g. artifacts.release' })}
          {field('target', 'Target')}
          <TextField select size="small" label="Outcome" value={form.outcome} onChange={(e) => setForm({ ...form, outcome: e.target.value })} sx={{ minWidth: 130 }}>
            <MenuItem value="">Any</MenuItem>
            <MenuItem value="success">success</MenuItem>
            <MenuItem value="failure">failure</MenuItem>
            <MenuItem value="denied">denied</MenuItem>
          </TextField>
          {field('since', 'From', { type: 'datetime-local', slotProps: { inputLabel: { shrink: true } } })}
          {field('until', 'Until', { type: 'datetime-local', slotProps: { inputLabel: { shrink: true } } })}
          <Button type="submit" variant="contained">
            Apply filters
          </Button>
          <Button
            onClick={() => {
              setForm(EMPTY);
              setFilter(EMPTY);
              setCursors([null]);
            }}
          >
            Clear
          </Button>
        </Box>
      </Paper>
      <ProblemAlert error={error} />
      {data && data.entries.length === 0 ? (
        <EmptyState title="No entry matches">Widen the time range or clear a filter.</EmptyState>
      ) : (
        <Paper variant="outlined">
          {isFetching && <LinearProgress aria-label="Loading entries" />}
          <TableContainer>
            <Table size="small" aria-label="Audit entries">
              <TableHead>
                <TableRow>
                  <TableCell>#</TableCell>
                  <TableCell>Time</TableCell>
                  <TableCell>Actor</TableCell>
                  <TableCell>Action</TableCell>
                  <TableCell>Target</TableCell>
                  <TableCell>Outcome</TableCell>
                  <TableCell>Client</TableCell>
                  <TableCell>Details</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {data?.entries.map((e) => (
                  <TableRow key={e.seq}>
                    <TableCell>{e.seq}</TableCell>
                    <TableCell sx={{ whiteSpace: 'nowrap' }}>
                      <DateTime ms={e.ts} />
                    </TableCell>
                    <TableCell>{e.actor || '—'}</TableCell>
                    <TableCell>
                      <code>{e.action}</code>
                    </TableCell>
                    <TableCell sx={{ minWidth: 140, maxWidth: 220, wordBreak: 'break-all' }}>{e.target}</TableCell>
                    <TableCell>
                      <Chip size="small" label={`${e.outcome} ${e.status || ''}`.trim()} color={e.outcome === 'success' ? 'success' : e.outcome === 'denied' ? 'warning' : 'error'} variant="outlined" />
                    </TableCell>
                    <TableCell>{e.client_ip}</TableCell>
                    <TableCell sx={{ minWidth: 180, maxWidth: 280, wordBreak: 'break-all', fontSize: '0.75rem' }}>{e.details && e.details !== 'null' ? e.details : ''}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </TableContainer>
          <Box sx={{ display: 'flex', justifyContent: 'space-between', alignItems: 'center', p: 1 }}>
            <Typography variant="body2">Page {cursors.length} (newest first)</Typography>
            <Box>
              <Button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
                Newer
              </Button>
              <Button disabled={!data?.next_cursor} onClick={() => data?.next_cursor && setCursors([...cursors, data.next_cursor])}>
                Older
              </Button>
            </Box>
          </Box>
        </Paper>
      )}
    </>
  );
}
