import { Link as RouterLink } from 'react-router';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Chip from '@mui/material/Chip';
import Link from '@mui/material/Link';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Paper from '@mui/material/Paper';
import Typography from '@mui/material/Typography';
import type { SeverityCounts } from '@/api/types';
import { STATUSES } from '@/api/types';
import { useAuth } from '@/lib/auth';
import { DateTime } from '@/components/DateTime';
import { Loading, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { SEVERITY_COLORS } from '@/components/SeverityCounts';
import { StatusChip } from '@/components/StatusChip';
import { useDeadLetters, useScanner, useStats } from '../api/dashboard';

function Card({ title, children }: { title: string; children: React.ReactNode }) {
  const id = `card-${title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <Paper component="section" variant="outlined" sx={{ p: 2, minWidth: 0 }} aria-labelledby={id}>
      <Typography id={id} variant="h6" component="h2" sx={{ mb: 1 }}>
        {title}
      </Typography>
      {children}
    </Paper>
  );
}

const BARS: { key: keyof SeverityCounts; label: string; color: string }[] = [
  { key: 'critical', label: 'Critical', color: SEVERITY_COLORS.critical! },
  { key: 'high', label: 'High', color: SEVERITY_COLORS.high! },
  { key: 'medium', label: 'Medium', color: SEVERITY_COLORS.medium! },
  { key: 'low', label: 'Low', color: SEVERITY_COLORS.low! },
  { key: 'unknown', label: 'Unknown', color: SEVERITY_COLORS.unknown! },
  { key: 'secrets', label: 'Secrets', color: '#6a1b9a' },
  { key: 'licenses', label: 'Licenses', color: '#00695c' },
];

/** A horizontal bar chart that is also a readable list for screen readers. */
function SeverityChart({ findings }: { findings: SeverityCounts }) {
  const max = Math.max(1, ...BARS.map((b) => findings[b.key]));
  return (
    <Box component="ul" aria-label="Findings by severity" sx={{ listStyle: 'none', p: 0, m: 0 }}>
      {BARS.map((b) => (
        <Box component="li" key={b.key} sx={{ display: 'grid', gridTemplateColumns: '80px 1fr 48px', alignItems: 'center', gap: 1, mb: 0.75 }}>
          <Typography variant="body2">{b.label}</Typography>
          <Box sx={{ bgcolor: 'action.hover', borderRadius: 1, height: 14 }} aria-hidden>
            <Box sx={{ width: `${(findings[b.key] / max) * 100}%`, bgcolor: b.color, height: '100%', borderRadius: 1, minWidth: findings[b.key] > 0 ? 4 : 0 }} />
          </Box>
          <Typography variant="body2" sx={{ textAlign: 'right', fontVariantNumeric: 'tabular-nums' }}>
            {findings[b.key]}
          </Typography>
        </Box>
      ))}
    </Box>
  );
}

export function DashboardPage() {
  const { can } = useAuth();
  const canAudit = can('audit_read');
  const { data: stats, error, isPending } = useStats();
  const scanner = useScanner();
  const deadLetters = useDeadLetters(canAudit);
  return (
    <>
      <PageHeader title="Dashboard" />
      <ProblemAlert error={error} />
      {isPending && <Loading label="Loading the figures" />}
      {stats && (
        <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr', md: '1fr 1fr', xl: '1fr 1fr 1fr' }, gap: 2 }}>
          <Card title="Artifacts by status">
            <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 1 }}>
              {STATUSES.filter((s) => s !== 'deleted' || (stats.by_status[s] ?? 0) > 0).map((s) => (
                <Link
                  key={s}
                  component={RouterLink}
                  to={`/artifacts?status=${s}`}
                  underline="none"
                  sx={{ display: 'inline-flex', alignItems: 'center', gap: 0.5, borderRadius: 1 }}
                >
                  <StatusChip status={s} />
                  <Typography component="span" sx={{ fontWeight: 700, fontVariantNumeric: 'tabular-nums' }}>
                    {stats.by_status[s] ?? 0}
                  </Typography>
                </Link>
              ))}
            </Box>
          </Card>
          <Card title="Findings by severity">
            <SeverityChart findings={stats.findings} />
            <Typography variant="caption" color="text.secondary">
              Latest scan of every approved or quarantined artifact.
            </Typography>
          </Card>
          <Card title="Scanner">
            {scanner.data ? (
              <>
                <Typography variant="body2">Trivy {scanner.data.trivy_version}</Typography>
                <Typography variant="body2">
                  Vulnerability DB:{' '}
                  {scanner.data.db_updated_at ? <DateTime ms={Date.parse(scanner.data.db_updated_at)} /> : 'not imported'}
                  {scanner.data.db_age_hours != null && ` (${Math.round(scanner.data.db_age_hours)} h old)`}
                </Typography>
                {scanner.data.db_stale && (
                  <Alert severity="warning" sx={{ mt: 1 }}>
                    The vulnerability DB is stale. Arca downloads updates by itself when downloads are on; offline, import a fresh one (arca admin trivy-db-import).
                  </Alert>
                )}
                {scanner.data.last_update_error && <Alert severity="error" sx={{ mt: 1 }}>{scanner.data.last_update_error}</Alert>}
              </>
            ) : scanner.isPending ? (
              <Loading label="Loading" />
            ) : (
              <ProblemAlert error={scanner.error} />
            )}
          </Card>
          <Card title="Recent uploads">
            {stats.recent_uploads.length === 0 ? (
              <Typography variant="body2">Nothing uploaded yet.</Typography>
            ) : (
              <List dense disablePadding>
                {stats.recent_uploads.map((a) => (
                  <ListItem key={a.id} disableGutters secondaryAction={<StatusChip status={a.status} />}>
                    <ListItemText
                      primary={
                        <Link component={RouterLink} to={`/artifacts/${a.id}`}>
                          {a.name}@{a.version}
                        </Link>
                      }
                      secondary={<DateTime ms={a.created_at} />}
                    />
                  </ListItem>
                ))}
              </List>
            )}
          </Card>
          {stats.recent_denials != null && (
            <Card title="Recent denials">
              {stats.recent_denials.length === 0 ? (
                <Typography variant="body2">No denial recorded.</Typography>
              ) : (
                <List dense disablePadding>
                  {stats.recent_denials.map((d, i) => (
                    <ListItem key={i} disableGutters>
                      <ListItemText
                        primary={`${d.actor || 'anonymous'}: ${d.action.endsWith(` ${d.target}`) ? d.action : `${d.action} ${d.target}`}`}
                        secondary={
                          <>
                            <DateTime ms={d.ts} /> · {d.client_ip}
                          </>
                        }
                      />
                    </ListItem>
                  ))}
                </List>
              )}
            </Card>
          )}
          {canAudit && stats.dead_letters != null && (
            <Card title="Dead-lettered events">
              <Typography variant="h4" component="p">
                {stats.dead_letters}
              </Typography>
              {stats.dead_letters > 0 ? (
                <>
                  <Chip color="error" label="events no handler could deliver: check the server log" />
                  <ProblemAlert error={deadLetters.error} />
                  {deadLetters.data && (
                    <List dense disablePadding aria-label="Newest dead-lettered events">
                      {deadLetters.data.slice(0, 5).map((d) => (
                        <ListItem key={d.id} disableGutters>
                          <ListItemText
                            primary={
                              <>
                                <code>{d.event_type.replace('dev.arca.artifact.', '')}</code> ·{' '}
                                <Link component={RouterLink} to={`/artifacts/${d.artifact_id}`}>
                                  {d.artifact_id}
                                </Link>
                              </>
                            }
                            secondary={
                              <>
                                <DateTime ms={d.dead_at ?? d.created_at} /> · {d.attempts} attempts
                                {d.last_error ? ` · ${d.last_error}` : ''}
                              </>
                            }
                          />
                        </ListItem>
                      ))}
                    </List>
                  )}
                </>
              ) : (
                <Typography variant="body2">Every lifecycle event was delivered.</Typography>
              )}
            </Card>
          )}
        </Box>
      )}
    </>
  );
}
