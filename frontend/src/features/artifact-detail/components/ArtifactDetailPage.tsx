import { useMemo, useState } from 'react';
import { Link as RouterLink, useParams } from 'react-router';
import Alert from '@mui/material/Alert';
import AlertTitle from '@mui/material/AlertTitle';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import Tab from '@mui/material/Tab';
import Tabs from '@mui/material/Tabs';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import Tooltip from '@mui/material/Tooltip';
import Typography from '@mui/material/Typography';
import DownloadIcon from '@mui/icons-material/Download';
import type { Artifact, ScanResults } from '@/api/types';
import { useAuth } from '@/lib/auth';
import { formatBytes } from '@/lib/format';
import { shellQuote } from '@/lib/shell';
import { CopyField } from '@/components/CopyButton';
import { DateTime } from '@/components/DateTime';
import { Loading, NotFound, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { SeverityCounts } from '@/components/SeverityCounts';
import { StatusChip } from '@/components/StatusChip';
import { isProblem } from '@/lib/problem';
import { navigateTo } from '@/lib/api-client';
import { useArtifact, useDownloadLink, useScanResults } from '../api/detail';
import { AdminActions } from './AdminActions';
import { FindingsTable, SeverityBadge } from './FindingsTable';
import { SignaturePanel } from './SignaturePanel';
import { Timeline } from './Timeline';
import { Field, Fields, Section } from './Section';

/** Why the download button is disabled, in words. */
export function downloadBlockedReason(a: Artifact): string | null {
  if (a.status === 'approved') return null;
  if (a.status === 'quarantined') return `Quarantined by policy: ${a.status_reason ?? 'see the findings below'}.`;
  if (a.status === 'failed') return `Failed: ${a.status_reason ?? 'no reason given'}.`;
  if (a.status === 'deleted') return 'Deleted: its bytes were destroyed.';
  return `Not downloadable yet: the artifact is ${a.status.replace(/_/g, ' ')}. Only approved artifacts can be downloaded.`;
}

function DownloadButton({ artifact }: { artifact: Artifact }) {
  const link = useDownloadLink(artifact.id);
  const reason = downloadBlockedReason(artifact);
  const button = (
    <Button
      variant="contained"
      startIcon={<DownloadIcon />}
      disabled={reason !== null || link.isPending}
      onClick={() => link.mutate(undefined, { onSuccess: (l) => navigateTo(l.url) })}
      aria-describedby={reason ? 'download-blocked' : undefined}
    >
      Download
    </Button>
  );
  return (
    <Box>
      {reason ? (
        <Tooltip title={reason}>
          <span>{button}</span>
        </Tooltip>
      ) : (
        button
      )}
      <ProblemAlert
        error={
          // Consumers see approved artifacts only: one quarantined (or deleted) since the page loaded is "not found".
          isProblem(link.error) && link.error.status === 404
            ? new Error('No longer downloadable: this artifact is not approved any more (a policy re-check quarantined it, or it was deleted).')
            : link.error
        }
      />
      {reason && (
        <Typography id="download-blocked" variant="body2" color="text.secondary" sx={{ mt: 0.5, maxWidth: 420 }}>
          {reason}
        </Typography>
      )}
    </Box>
  );
}

function ScanSection({ artifact, results, exportName }: { artifact: Artifact; results: ScanResults; exportName: string }) {
  const [tab, setTab] = useState(0);
  const f = results.findings;
  const archive = { unsafe_links: [], unsafe_link_count: 0, unsupported_format: null, ...f.archive };
  const scan = results.scan;
  return (
    <Section title="Scan">
      {!scan && <Typography variant="body2">Not scanned yet.</Typography>}
      {scan && (
        <>
          <Fields>
            <Field label="Result">
              {scan.status}
              {scan.error ? ` · ${scan.error}` : ''}
            </Field>
            <Field label="Findings">
              <SeverityCounts counts={scan.summary} />
            </Field>
            <Field label="Kind">{scan.kind ?? '—'}</Field>
            <Field label="Scanned">
              <DateTime ms={scan.finished_at} />
            </Field>
            <Field label="Trivy">
              {scan.trivy_version ?? '—'}, vulnerability DB of {scan.db_updated_at ? <DateTime ms={Date.parse(scan.db_updated_at)} /> : 'unknown date'}
            </Field>
          </Fields>
          {archive.unsupported_format && <Alert severity="warning" sx={{ mt: 1 }}>Unsupported archive format: {archive.unsupported_format}</Alert>}
          {(archive.unsafe_link_count ?? 0) > 0 && (
            <Alert severity="warning" sx={{ mt: 1 }}>
              {archive.unsafe_link_count} unsafe link{archive.unsafe_link_count === 1 ? '' : 's'} in the archive
              {(archive.unsafe_links ?? []).length > 0 && `: ${(archive.unsafe_links ?? []).slice(0, 5).map((l) => l.path).join(', ')}`}
            </Alert>
          )}
          <Tabs value={tab} onChange={(_, v: number) => setTab(v)} aria-label="Findings" sx={{ mt: 2, borderBottom: 1, borderColor: 'divider' }}>
            <Tab label={`Vulnerabilities (${f.vulnerabilities.length})`} id="tab-0" aria-controls="tabpanel-0" />
            <Tab label={`Secrets (${f.secrets.length})`} id="tab-1" aria-controls="tabpanel-1" />
            <Tab label={`Licenses (${f.licenses.length})`} id="tab-2" aria-controls="tabpanel-2" />
          </Tabs>
          <Box role="tabpanel" id={`tabpanel-${tab}`} aria-labelledby={`tab-${tab}`} sx={{ pt: 2 }}>
            {tab === 0 &&
              (f.vulnerabilities.length === 0 ? (
                <Typography variant="body2">No known vulnerability.</Typography>
              ) : (
                <FindingsTable vulnerabilities={f.vulnerabilities} exportName={exportName} />
              ))}
            {tab === 1 &&
              (f.secrets.length === 0 ? (
                <Typography variant="body2">No secret found.</Typography>
              ) : (
                <>
                  <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
                    Secrets are shown by location only; Arca never stores their values.
                  </Typography>
                  <Table size="small" aria-label="Secrets">
                    <TableHead>
                      <TableRow>
                        <TableCell>Rule</TableCell>
                        <TableCell>Severity</TableCell>
                        <TableCell>What</TableCell>
                        <TableCell>Location</TableCell>
                      </TableRow>
                    </TableHead>
                    <TableBody>
                      {f.secrets.map((s, i) => (
                        <TableRow key={i}>
                          <TableCell>
                            <code>{s.rule}</code>
                          </TableCell>
                          <TableCell>
                            <SeverityBadge severity={s.severity} />
                          </TableCell>
                          <TableCell>{s.title}</TableCell>
                          <TableCell>
                            <code>
                              {s.file}
                              {s.line ? `:${s.line}` : ''}
                            </code>
                          </TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </>
              ))}
            {tab === 2 &&
              (f.licenses.length === 0 ? (
                <Typography variant="body2">No license detected.</Typography>
              ) : (
                <Table size="small" aria-label="Licenses">
                  <TableHead>
                    <TableRow>
                      <TableCell>License</TableCell>
                      <TableCell>Package</TableCell>
                      <TableCell>Category</TableCell>
                      <TableCell>Severity</TableCell>
                      <TableCell>File</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {f.licenses.map((l, i) => (
                      <TableRow key={i}>
                        <TableCell>{l.name}</TableCell>
                        <TableCell>{l.package || '—'}</TableCell>
                        <TableCell>{l.category}</TableCell>
                        <TableCell>
                          <SeverityBadge severity={l.severity} />
                        </TableCell>
                        <TableCell>
                          <code>{l.file || '—'}</code>
                        </TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              ))}
          </Box>
        </>
      )}
      {artifact.status === 'scanning' && <Typography variant="body2">A scan is running; this page updates when it ends.</Typography>}
    </Section>
  );
}

export function ArtifactDetailPage() {
  const { id = '' } = useParams();
  const { can, identity } = useAuth();
  const artifact = useArtifact(id);
  const a = artifact.data;
  const canScan = can('scan_results_read');
  const scan = useScanResults(id, canScan && !!a && a.status !== 'pending_upload' && a.status !== 'uploading', a?.updated_at);
  const origin = typeof window !== 'undefined' ? window.location.origin : '';
  const commands = useMemo(
    () =>
      a
        ? {
            pull: `arca pull ${shellQuote(`${a.name}@${a.version}`)}`,
            curl: `curl -fL --oauth2-bearer "$ARCA_TOKEN" -o ${shellQuote(a.filename)} ${shellQuote(`${origin}/api/artifacts/${a.id}/download`)}`,
          }
        : null,
    [a, origin],
  );

  if (artifact.isPending) return <Loading label="Loading the artifact" />;
  if (artifact.error) {
    if (isProblem(artifact.error) && artifact.error.status === 404) return <NotFound />;
    return <ProblemAlert error={artifact.error} />;
  }
  if (!a || !commands) return null;
  const isOwner = identity?.id === a.owner_id;
  const firstReason = a.policy_reasons.find((r) => r.rule === 'max_severity');

  return (
    <>
      <Button component={RouterLink} to="/artifacts" size="small" sx={{ mb: 1 }}>
        ← All artifacts
      </Button>
      <PageHeader
        title={`${a.name}@${a.version}`}
        subtitle={
          <Box component="span" sx={{ display: 'inline-flex', gap: 1, alignItems: 'center', flexWrap: 'wrap' }}>
            <StatusChip status={a.status} size="medium" />
            {a.retryable && <Chip size="small" label="retryable" variant="outlined" />}
            <span>{a.filename}</span>
          </Box>
        }
        actions={can('artifacts_download') && <DownloadButton artifact={a} />}
      />
      {(a.status === 'quarantined' || a.status === 'failed') && (
        <Alert severity={a.status === 'failed' ? 'error' : 'warning'} sx={{ mb: 2 }}>
          <AlertTitle>{a.status === 'failed' ? 'Failed' : 'Quarantined'}</AlertTitle>
          {a.status_reason ?? 'No reason given.'}
          {a.policy_reasons.length > 0 && (
            <ul style={{ margin: '4px 0 0', paddingLeft: 20 }}>
              {a.policy_reasons.map((r, i) => (
                <li key={i}>
                  <strong>{r.rule.replace(/_/g, ' ')}</strong>: {r.finding}
                  {r.package ? ` in ${r.package}` : ''}
                  {r.severity ? ` (${r.severity})` : ''} — {r.detail}
                </li>
              ))}
            </ul>
          )}
        </Alert>
      )}
      {(can('artifacts_manage') || can('artifacts_delete') || (a.retryable && isOwner)) && (
        <Section title="Actions">
          <AdminActions
            artifact={a}
            canManage={can('artifacts_manage')}
            canDelete={can('artifacts_delete') && (isOwner || can('artifacts_manage'))}
            canRetry={!!a.retryable && a.status === 'failed' && isOwner}
            suggestion={firstReason ? { vulnerability_id: firstReason.finding } : undefined}
          />
        </Section>
      )}
      <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr', lg: '1fr 1fr' }, gap: 2 }}>
        <Section title="Details">
          <Fields>
            <Field label="Digest (SHA-256)">
              <CopyField value={a.sha256} label="Copy the SHA-256 digest" />
            </Field>
            <Field label="Size">{formatBytes(a.size)} ({a.size.toLocaleString()} bytes)</Field>
            <Field label="Owner">{a.owner ?? a.owner_id}</Field>
            <Field label="Uploaded">
              <DateTime ms={a.created_at} />
            </Field>
            <Field label="Updated">
              <DateTime ms={a.updated_at} />
            </Field>
            <Field label="Labels">
              {Object.keys(a.labels).length === 0
                ? 'none'
                : Object.entries(a.labels).map(([k, v]) => <Chip key={k} size="small" variant="outlined" label={`${k}=${v}`} sx={{ mr: 0.5, mb: 0.5 }} />)}
            </Field>
            <Field label="Description">{a.description || '—'}</Field>
            <Field label="Id">
              <code>{a.id}</code>
            </Field>
          </Fields>
        </Section>
        <Section title="Get it">
          <Typography variant="body2" sx={{ mb: 1 }}>
            With the CLI (checks the digest and Arca&apos;s signature):
          </Typography>
          <CopyField value={commands.pull} label="Copy the arca pull command" />
          <Typography variant="body2" sx={{ mt: 2, mb: 1 }}>
            With curl and an API token:
          </Typography>
          <CopyField value={commands.curl} label="Copy the curl command" />
        </Section>
      </Box>
      <Timeline artifact={a} />
      {canScan && (
        <>
          <ProblemAlert error={scan.error} />
          {scan.data && <ScanSection artifact={a} results={scan.data} exportName={`${a.name}-${a.version}`} />}
        </>
      )}
      <SignaturePanel artifact={a} canAttach={can('artifacts_write') && (isOwner || can('artifacts_manage'))} />
    </>
  );
}
