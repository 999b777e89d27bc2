import { useMemo, useState } from 'react';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Checkbox from '@mui/material/Checkbox';
import Chip from '@mui/material/Chip';
import FormControlLabel from '@mui/material/FormControlLabel';
import Link from '@mui/material/Link';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TableSortLabel from '@mui/material/TableSortLabel';
import TextField from '@mui/material/TextField';
import ToggleButton from '@mui/material/ToggleButton';
import ToggleButtonGroup from '@mui/material/ToggleButtonGroup';
import Typography from '@mui/material/Typography';
import type { Vulnerability } from '@/api/types';
import { SEVERITY_COLORS } from '@/components/SeverityCounts';
import { defaultFilter, filterFindings, findingsCsv, saveText, SEVERITY_ORDER, type FindingFilter, type FindingSort } from './findings';

function safeUrl(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.toString() : null;
  } catch {
    return null;
  }
}

export function SeverityBadge({ severity }: { severity: string }) {
  const key = severity.toLowerCase();
  return (
    <Box
      component="span"
      sx={{ px: 0.75, py: 0.1, borderRadius: 1, fontSize: '0.75rem', fontWeight: 700, color: key === 'medium' ? '#000' : '#fff', bgcolor: SEVERITY_COLORS[key] ?? '#616161' }}
    >
      {severity.toUpperCase()}
    </Box>
  );
}

export function FindingsTable({ vulnerabilities, exportName }: { vulnerabilities: Vulnerability[]; exportName: string }) {
  const [filter, setFilter] = useState<FindingFilter>(defaultFilter);
  const rows = useMemo(() => filterFindings(vulnerabilities, filter), [vulnerabilities, filter]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const v of vulnerabilities) c[v.severity.toUpperCase()] = (c[v.severity.toUpperCase()] ?? 0) + 1;
    return c;
  }, [vulnerabilities]);
  const sortBy = (sort: FindingSort) =>
    setFilter((f) => ({ ...f, sort, order: f.sort === sort && f.order === 'asc' ? 'desc' : 'asc' }));
  const header = (sort: FindingSort, label: string) => (
    <TableSortLabel active={filter.sort === sort} direction={filter.sort === sort ? filter.order : 'asc'} onClick={() => sortBy(sort)}>
      {label}
    </TableSortLabel>
  );

  return (
    <Box>
      <Box sx={{ display: 'flex', gap: 2, flexWrap: 'wrap', alignItems: 'center', mb: 1 }}>
        <ToggleButtonGroup
          size="small"
          value={filter.severities}
          onChange={(_, severities: string[]) => setFilter((f) => ({ ...f, severities }))}
          aria-label="Filter by severity"
        >
          {SEVERITY_ORDER.map((s) => (
            <ToggleButton key={s} value={s} aria-label={`${s.toLowerCase()} (${counts[s] ?? 0})`}>
              {s.toLowerCase()} ({counts[s] ?? 0})
            </ToggleButton>
          ))}
        </ToggleButtonGroup>
        <FormControlLabel
          control={<Checkbox checked={filter.fixAvailable} onChange={(e) => setFilter((f) => ({ ...f, fixAvailable: e.target.checked }))} />}
          label="Fix available"
        />
        <TextField size="small" label="Search findings" value={filter.text} onChange={(e) => setFilter((f) => ({ ...f, text: e.target.value }))} />
        <Box sx={{ flexGrow: 1 }} />
        <Button size="small" onClick={() => saveText(findingsCsv(rows), `${exportName}-findings.csv`, 'text/csv')}>
          Export CSV
        </Button>
        <Button size="small" onClick={() => saveText(JSON.stringify(rows, null, 2), `${exportName}-findings.json`, 'application/json')}>
          Export JSON
        </Button>
      </Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }} aria-live="polite">
        {rows.length} of {vulnerabilities.length} vulnerabilities shown
      </Typography>
      <TableContainer>
        <Table size="small" aria-label="Vulnerabilities">
          <TableHead>
            <TableRow>
              <TableCell>{header('id', 'Vulnerability')}</TableCell>
              <TableCell>{header('severity', 'Severity')}</TableCell>
              <TableCell>{header('package', 'Package')}</TableCell>
              <TableCell>Installed</TableCell>
              <TableCell>Fixed in</TableCell>
              <TableCell>{header('cvss', 'CVSS')}</TableCell>
              <TableCell>Title</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {rows.map((v) => {
              const href = safeUrl(v.url);
              return (
                <TableRow key={`${v.id}|${v.package}|${v.target}|${v.installed}`}>
                  <TableCell sx={{ whiteSpace: 'nowrap' }}>
                    {href ? (
                      <Link href={href} target="_blank" rel="noopener noreferrer">
                        {v.id}
                      </Link>
                    ) : (
                      v.id
                    )}
                  </TableCell>
                  <TableCell>
                    <SeverityBadge severity={v.severity} />
                  </TableCell>
                  <TableCell>{v.package}</TableCell>
                  <TableCell>
                    <code>{v.installed}</code>
                  </TableCell>
                  <TableCell>{v.fixed ? <code>{v.fixed}</code> : <Chip size="small" label="no fix" variant="outlined" />}</TableCell>
                  <TableCell>{v.cvss_score ?? '—'}</TableCell>
                  <TableCell sx={{ maxWidth: 360 }}>{v.title}</TableCell>
                </TableRow>
              );
            })}
          </TableBody>
        </Table>
      </TableContainer>
    </Box>
  );
}
