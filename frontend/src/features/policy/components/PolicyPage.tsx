import { useEffect, useState, type FormEvent } from 'react';
import { Link as RouterLink } from 'react-router';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import FormControlLabel from '@mui/material/FormControlLabel';
import Link from '@mui/material/Link';
import MenuItem from '@mui/material/MenuItem';
import Paper from '@mui/material/Paper';
import Switch from '@mui/material/Switch';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import { DateTime } from '@/components/DateTime';
import { ConfirmDialog } from '@/components/ConfirmDialog';
import { EmptyState, Loading, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useNotify } from '@/components/Notifier';
import { relativeToNow } from '@/lib/format';
import type { PolicyException } from '@/api/types';
import { useCreateException, useExceptions, usePolicy, useRevokeException } from '../api/policy';

function useNow(intervalMs: number) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

function PolicyCard() {
  const { data, error, isPending } = usePolicy();
  if (isPending) return <Loading label="Loading the policy" />;
  if (error) return <ProblemAlert error={error} />;
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  return (
    <Paper component="section" variant="outlined" sx={{ p: 2, mb: 3 }} aria-labelledby="policy-heading">
      <Typography id="policy-heading" variant="h6" component="h2" sx={{ mb: 1 }}>
        Policy in force
      </Typography>
      <Box component="dl" sx={{ display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: 2, rowGap: 0.5, m: 0 }}>
        <dt>Highest severity allowed</dt>
        <dd style={{ margin: 0 }}>
          <strong>{data.max_severity}</strong> (anything above quarantines)
        </dd>
        <dt>Secrets quarantine</dt>
        <dd style={{ margin: 0 }}>{yes(data.block_secrets)}</dd>
        <dt>Denied licenses</dt>
        <dd style={{ margin: 0 }}>{data.license_deny.length ? data.license_deny.join(', ') : 'none'}</dd>
        <dt>Fail closed</dt>
        <dd style={{ margin: 0 }}>{yes(data.fail_closed)} (a scan that cannot finish {data.fail_closed ? 'fails' : 'approves'} the artifact)</dd>
        <dt>Publisher signature required</dt>
        <dd style={{ margin: 0 }}>{yes(data.require_publisher_signature)}</dd>
        <dt>Unsafe links quarantine</dt>
        <dd style={{ margin: 0 }}>{yes(data.block_unsafe_links ?? true)}</dd>
        <dt>Unsupported archives quarantine</dt>
        <dd style={{ margin: 0 }}>{yes(data.block_unsupported_archives ?? true)}</dd>
      </Box>
    </Paper>
  );
}

function inDays(days: number): string {
  const d = new Date(Date.now() + days * 86_400_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function CreateForm() {
  const create = useCreateException();
  const notify = useNotify();
  const [kind, setKind] = useState<'vulnerability' | 'package'>('vulnerability');
  const [subject, setSubject] = useState('');
  const [artifactId, setArtifactId] = useState('');
  const [expires, setExpires] = useState(inDays(30));
  const [justification, setJustification] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      {
        artifact_id: artifactId.trim() || null,
        vulnerability_id: kind === 'vulnerability' ? subject.trim() : null,
        package: kind === 'package' ? subject.trim() : null,
        justification: justification.trim(),
        expires_at: new Date(expires).getTime(),
      },
      {
        onSuccess: () => {
          notify('Exception created');
          setSubject('');
          setJustification('');
        },
      },
    );
  };
  return (
    <Paper component="form" variant="outlined" onSubmit={submit} sx={{ p: 2, mb: 3 }} aria-labelledby="new-exception-heading">
      <Typography id="new-exception-heading" variant="h6" component="h2" sx={{ mb: 1 }}>
        New exception
      </Typography>
      <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr', md: '160px 1fr 1fr' }, gap: 2 }}>
        <TextField select label="Waive" value={kind} onChange={(e) => setKind(e.target.value as 'vulnerability' | 'package')}>
          <MenuItem value="vulnerability">Vulnerability</MenuItem>
          <MenuItem value="package">Package</MenuItem>
        </TextField>
        <TextField label={kind === 'vulnerability' ? 'Vulnerability id' : 'Package name'} value={subject} onChange={(e) => setSubject(e.target.value)} required />
        <TextField label="Artifact id (empty: all artifacts)" value={artifactId} onChange={(e) => setArtifactId(e.target.value)} />
        <TextField label="Expires" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} required slotProps={{ inputLabel: { shrink: true } }} />
        <TextField label="Justification" value={justification} onChange={(e) => setJustification(e.target.value)} required helperText="10 to 2000 characters" sx={{ gridColumn: { md: 'span 2' } }} />
      </Box>
      <ProblemAlert error={create.error} />
      <Button type="submit" variant="contained" sx={{ mt: 2 }} disabled={create.isPending || !subject.trim() || justification.trim().length < 10}>
        Create exception
      </Button>
    </Paper>
  );
}

export function PolicyPage() {
  const [all, setAll] = useState(false);
  const { data, error, isPending } = useExceptions(all);
  const revoke = useRevokeException();
  const notify = useNotify();
  const [target, setTarget] = useState<PolicyException | null>(null);
  const now = useNow(30_000);
  return (
    <>
      <PageHeader title="Policy and exceptions" />
      <PolicyCard />
      <CreateForm />
      <Box sx={{ display: 'flex', alignItems: 'center', justifyContent: 'space-between', mb: 1 }}>
        <Typography variant="h6" component="h2">
          Exceptions
        </Typography>
        <FormControlLabel control={<Switch checked={all} onChange={(e) => setAll(e.target.checked)} />} label="Include expired and revoked" />
      </Box>
      <ProblemAlert error={error} />
      {isPending && <Loading label="Loading exceptions" />}
      {data && data.length === 0 && (
        <EmptyState title="No exception in force">Create one above, or from a quarantined artifact&apos;s page, to waive a finding until a date.</EmptyState>
      )}
      {data && data.length > 0 && (
        <TableContainer component={Paper} variant="outlined">
          <Table size="small" aria-label="Exceptions">
            <TableHead>
              <TableRow>
                <TableCell>Waives</TableCell>
                <TableCell>Scope</TableCell>
                <TableCell>Justification</TableCell>
                <TableCell>Expires</TableCell>
                <TableCell>Created</TableCell>
                <TableCell>
                  <span className="visually-hidden">Actions</span>
                </TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {data.map((x) => {
                const active = x.revoked_at === null && x.expires_at > now;
                return (
                  <TableRow key={x.id}>
                    <TableCell>
                      {x.vulnerability_id ? <code>{x.vulnerability_id}</code> : <>package <code>{x.package}</code></>}
                    </TableCell>
                    <TableCell>
                      {x.artifact_id ? (
                        <Link component={RouterLink} to={`/artifacts/${x.artifact_id}`}>
                          one artifact
                        </Link>
                      ) : (
                        'all artifacts'
                      )}
                    </TableCell>
                    <TableCell sx={{ maxWidth: 320 }}>{x.justification}</TableCell>
                    <TableCell>
                      {x.revoked_at !== null ? (
                        <Chip size="small" label="revoked" />
                      ) : (
                        <span title={new Date(x.expires_at).toString()}>
                          <Chip size="small" color={active ? (x.expires_at - now < 3 * 86_400_000 ? 'warning' : 'success') : 'default'} label={active ? `expires ${relativeToNow(x.expires_at, now)}` : 'expired'} />
                        </span>
                      )}
                    </TableCell>
                    <TableCell>
                      {x.created_by}, <DateTime ms={x.created_at} />
                    </TableCell>
                    <TableCell>
                      {active && (
                        <Button size="small" color="error" onClick={() => setTarget(x)} aria-label={`Revoke exception for ${x.vulnerability_id ?? x.package}`}>
                          Revoke
                        </Button>
                      )}
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
        </TableContainer>
      )}
      <ConfirmDialog
        open={target !== null}
        title="Revoke the exception"
        confirmLabel="Revoke"
        danger
        busy={revoke.isPending}
        onClose={() => (setTarget(null), revoke.reset())}
        onConfirm={() => target && revoke.mutate(target.id, { onSuccess: () => (notify('Exception revoked'), setTarget(null)) })}
      >
        <Typography>Artifacts approved thanks to this exception are evaluated again and may be quarantined.</Typography>
        <ProblemAlert error={revoke.error} />
      </ConfirmDialog>
    </>
  );
}
