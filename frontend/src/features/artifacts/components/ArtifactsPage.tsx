import { useEffect, useState } from 'react';
import { Link as RouterLink } from 'react-router';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import FormControl from '@mui/material/FormControl';
import InputLabel from '@mui/material/InputLabel';
import LinearProgress from '@mui/material/LinearProgress';
import Link from '@mui/material/Link';
import MenuItem from '@mui/material/MenuItem';
import Paper from '@mui/material/Paper';
import Select from '@mui/material/Select';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TablePagination from '@mui/material/TablePagination';
import TableRow from '@mui/material/TableRow';
import TableSortLabel from '@mui/material/TableSortLabel';
import TextField from '@mui/material/TextField';
import { STATUSES, type ArtifactSort } from '@/api/types';
import { useCan } from '@/lib/auth';
import { formatBytes } from '@/lib/format';
import { DateTime } from '@/components/DateTime';
import { EmptyState, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { SeverityCounts } from '@/components/SeverityCounts';
import { StatusChip, statusLabel } from '@/components/StatusChip';
import { useArtifacts } from '../api/artifacts';
import { PAGE_SIZES, useArtifactQuery } from '../hooks/useArtifactQuery';

/** A text filter that writes to the URL after typing stops. */
function DebouncedField({ label, value, onCommit, placeholder, helperText }: { label: string; value: string; onCommit: (v: string) => void; placeholder?: string; helperText?: string }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    if (text === value) return;
    const t = setTimeout(() => onCommit(text.trim()), 350);
    return () => clearTimeout(t);
  }, [text, value, onCommit]);
  return (
    <TextField
      size="small"
      label={label}
      value={text}
      placeholder={placeholder}
      helperText={helperText}
      onChange={(e) => setText(e.target.value)}
      onKeyDown={(e) => {
        if (e.key === 'Enter') onCommit(text.trim());
      }}
    />
  );
}

const COLUMNS: { key: ArtifactSort | null; label: string; align?: 'right' }[] = [
  { key: 'name', label: 'Name' },
  { key: 'version', label: 'Version' },
  { key: 'status', label: 'Status' },
  { key: 'size', label: 'Size', align: 'right' },
  { key: null, label: 'Findings' },
  { key: null, label: 'Labels' },
  { key: null, label: 'Owner' },
  { key: 'created_at', label: 'Uploaded' },
];

export function ArtifactsPage() {
  const { query, update, toggleSort, filtered, clear } = useArtifactQuery();
  const canUpload = useCan('artifacts_write');
  const { data, error, isFetching, isPending } = useArtifacts(query);
  const labelInvalid = query.label !== '' && !/^[^=]+=.*$/.test(query.label);

  return (
    <>
      <PageHeader
        title="Artifacts"
        subtitle={data ? `${data.total} artifact${data.total === 1 ? '' : 's'}` : undefined}
        actions={
          canUpload && (
            <Button component={RouterLink} to="/upload" variant="contained">
              Upload
            </Button>
          )
        }
      />
      <Box role="search" aria-label="Filter artifacts" sx={{ display: 'flex', gap: 2, flexWrap: 'wrap', mb: 2, alignItems: 'flex-start' }}>
        <DebouncedField label="Search by name" value={query.q} onCommit={(q) => update({ q })} />
        <FormControl size="small" sx={{ minWidth: 170 }}>
          <InputLabel id="status-filter-label">Status</InputLabel>
          <Select labelId="status-filter-label" label="Status" value={query.status} onChange={(e) => update({ status: e.target.value })}>
            <MenuItem value="">Any status</MenuItem>
            {STATUSES.map((s) => (
              <MenuItem key={s} value={s}>
                {statusLabel(s)}
              </MenuItem>
            ))}
          </Select>
        </FormControl>
        <DebouncedField label="Label" placeholder="key=value" value={query.label} onCommit={(label) => update({ label })} helperText={labelInvalid ? 'Use key=value' : undefined} />
        {filtered && (
          <Button onClick={clear} sx={{ mt: 0.5 }}>
            Clear filters
          </Button>
        )}
      </Box>
      <ProblemAlert error={error} />
      {data && data.total === 0 && !isFetching ? (
        filtered ? (
          <EmptyState title="No artifact matches these filters" action={<Button onClick={clear}>Clear filters</Button>}>
            Try a shorter name, another status, or a label written as key=value.
          </EmptyState>
        ) : (
          <EmptyState
            title="No artifacts yet"
            action={
              canUpload && (
                <Button component={RouterLink} to="/upload" variant="contained">
                  Upload the first artifact
                </Button>
              )
            }
          >
            {canUpload
              ? 'Upload a build: Arca verifies, scans and signs it before anyone can download it.'
              : 'Publishers upload artifacts; approved ones appear here for you to download.'}
          </EmptyState>
        )
      ) : (
        <Paper variant="outlined">
          {(isFetching || isPending) && <LinearProgress aria-label="Loading artifacts" />}
          <TableContainer>
            <Table size="small" aria-label="Artifacts">
              <TableHead>
                <TableRow>
                  {COLUMNS.map((c) => (
                    <TableCell key={c.label} align={c.align} sortDirection={c.key && query.sort === c.key ? query.order : false}>
                      {c.key ? (
                        <TableSortLabel active={query.sort === c.key} direction={query.sort === c.key ? query.order : 'asc'} onClick={() => toggleSort(c.key!)}>
                          {c.label}
                        </TableSortLabel>
                      ) : (
                        c.label
                      )}
                    </TableCell>
                  ))}
                </TableRow>
              </TableHead>
              <TableBody>
                {data?.items.map((a) => (
                  <TableRow key={a.id} hover>
                    <TableCell sx={{ minWidth: 120, maxWidth: 260, wordBreak: 'break-word' }}>
                      <Link component={RouterLink} to={`/artifacts/${a.id}`} sx={{ fontWeight: 600 }}>
                        {a.name}
                      </Link>
                    </TableCell>
                    <TableCell>{a.version}</TableCell>
                    <TableCell>
                      <StatusChip status={a.status} />
                    </TableCell>
                    <TableCell align="right" sx={{ whiteSpace: 'nowrap' }}>
                      {formatBytes(a.size)}
                    </TableCell>
                    <TableCell>
                      <SeverityCounts counts={a.severity} />
                    </TableCell>
                    <TableCell sx={{ maxWidth: 220 }}>
                      <Box sx={{ display: 'flex', gap: 0.5, flexWrap: 'wrap' }}>
                        {Object.entries(a.labels).map(([k, v]) => (
                          <Chip
                            key={k}
                            size="small"
                            variant="outlined"
                            label={`${k}=${v}`}
                            onClick={() => update({ label: `${k}=${v}` })}
                            aria-label={`Filter by label ${k}=${v}`}
                          />
                        ))}
                      </Box>
                    </TableCell>
                    <TableCell>{a.owner ?? <span title={a.owner_id}>{a.owner_id.slice(0, 8)}</span>}</TableCell>
                    <TableCell sx={{ whiteSpace: 'nowrap' }}>
                      <DateTime ms={a.created_at} />
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </TableContainer>
          <TablePagination
            component="div"
            count={data?.total ?? 0}
            page={data ? Math.max(0, query.page - 1) : 0}
            rowsPerPage={query.per_page}
            rowsPerPageOptions={PAGE_SIZES}
            onPageChange={(_, p) => update({ page: p + 1 })}
            onRowsPerPageChange={(e) => update({ per_page: Number(e.target.value) })}
          />
        </Paper>
      )}
    </>
  );
}
