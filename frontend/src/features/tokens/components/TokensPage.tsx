import { useState, type FormEvent } from 'react';
import Alert from '@mui/material/Alert';
import AlertTitle from '@mui/material/AlertTitle';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Checkbox from '@mui/material/Checkbox';
import Chip from '@mui/material/Chip';
import FormControlLabel from '@mui/material/FormControlLabel';
import FormGroup from '@mui/material/FormGroup';
import FormLabel from '@mui/material/FormLabel';
import Paper from '@mui/material/Paper';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import type { CreatedToken, Permission, TokenInfo } from '@/api/types';
import { useAuth } from '@/lib/auth';
import { ConfirmDialog } from '@/components/ConfirmDialog';
import { CopyField } from '@/components/CopyButton';
import { DateTime } from '@/components/DateTime';
import { EmptyState, Loading, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useNotify } from '@/components/Notifier';
import { useCreateToken, useRevokeToken, useTokens } from '../api/tokens';

function CreateTokenForm({ onCreated }: { onCreated: (t: CreatedToken) => void }) {
  const { identity } = useAuth();
  // A token can carry only permissions its owner has; managing tokens with a token is refused.
  const available = (identity?.permissions ?? []).filter((p) => p !== 'tokens_manage') as Permission[];
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Permission[]>(available.filter((p) => p === 'artifacts_read' || p === 'artifacts_download'));
  const [days, setDays] = useState(30);
  const create = useCreateToken();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name: name.trim(), scopes, expires_in_days: days }, { onSuccess: (t) => (onCreated(t), setName('')) });
  };
  return (
    <Paper component="form" variant="outlined" onSubmit={submit} sx={{ p: 2, mb: 3 }} aria-labelledby="new-token-heading">
      <Typography id="new-token-heading" variant="h6" component="h2" sx={{ mb: 1 }}>
        New token
      </Typography>
      <Box sx={{ display: 'flex', gap: 2, flexWrap: 'wrap' }}>
        <TextField label="Name" value={name} onChange={(e) => setName(e.target.value)} required helperText="What uses it, e.g. ci-release" />
        <TextField label="Expires in (days)" type="number" value={days} onChange={(e) => setDays(Math.max(1, Number(e.target.value) || 1))} slotProps={{ htmlInput: { min: 1, max: 365 } }} required />
      </Box>
      <Box component="fieldset" sx={{ border: 0, p: 0, m: 0, mt: 1 }}>
        <FormLabel component="legend">Scopes</FormLabel>
        <Typography variant="body2" color="text.secondary">
          To push from CI (<code>arca push</code>): artifacts_read and artifacts_write. To pull: artifacts_read and artifacts_download.
        </Typography>
        <FormGroup row>
          {available.map((p) => (
            <FormControlLabel
              key={p}
              control={<Checkbox checked={scopes.includes(p)} onChange={(e) => setScopes(e.target.checked ? [...scopes, p] : scopes.filter((x) => x !== p))} />}
              label={p}
            />
          ))}
        </FormGroup>
      </Box>
      <ProblemAlert error={create.error} />
      <Button type="submit" variant="contained" sx={{ mt: 1 }} disabled={create.isPending || !name.trim() || scopes.length === 0}>
        Create token
      </Button>
    </Paper>
  );
}

export function TokensPage() {
  const { data, error, isPending } = useTokens();
  const revoke = useRevokeToken();
  const notify = useNotify();
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [target, setTarget] = useState<TokenInfo | null>(null);
  const now = Date.now();
  return (
    <>
      <PageHeader title="API tokens" subtitle="Tokens let scripts and CI call Arca as you, with the scopes you choose." />
      {created && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setCreated(null)}>
          <AlertTitle>Token {created.name} created</AlertTitle>
          Copy it now: it is shown only once.
          <Box sx={{ mt: 1 }}>
            <CopyField value={created.token} label="Copy the new token" />
          </Box>
        </Alert>
      )}
      <CreateTokenForm onCreated={setCreated} />
      <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
        Your tokens
      </Typography>
      <ProblemAlert error={error} />
      {isPending && <Loading label="Loading tokens" />}
      {data && data.length === 0 && <EmptyState title="No token yet">Create one above for a script or a CI pipeline.</EmptyState>}
      {data && data.length > 0 && (
        <TableContainer component={Paper} variant="outlined">
          <Table size="small" aria-label="API tokens">
            <TableHead>
              <TableRow>
                <TableCell>Name</TableCell>
                <TableCell>Scopes</TableCell>
                <TableCell>Created</TableCell>
                <TableCell>Expires</TableCell>
                <TableCell>Last used</TableCell>
                <TableCell>State</TableCell>
                <TableCell>
                  <span className="visually-hidden">Actions</span>
                </TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {data.map((t) => {
                const active = t.revoked_at === null && t.expires_at > now;
                return (
                  <TableRow key={t.id}>
                    <TableCell sx={{ fontWeight: 600 }}>{t.name}</TableCell>
                    <TableCell sx={{ maxWidth: 300 }}>
                      {t.scopes.map((s) => (
                        <Chip key={s} size="small" label={s} variant="outlined" sx={{ mr: 0.5, mb: 0.5 }} />
                      ))}
                    </TableCell>
                    <TableCell>
                      <DateTime ms={t.created_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime ms={t.expires_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime ms={t.last_used_at} fallback="never" />
                    </TableCell>
                    <TableCell>
                      <Chip size="small" label={t.revoked_at !== null ? 'revoked' : active ? 'active' : 'expired'} color={active ? 'success' : 'default'} />
                    </TableCell>
                    <TableCell>
                      {active && (
                        <Button size="small" color="error" onClick={() => setTarget(t)} aria-label={`Revoke token ${t.name}`}>
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
        title={`Revoke token ${target?.name ?? ''}`}
        confirmLabel="Revoke"
        danger
        busy={revoke.isPending}
        onClose={() => (setTarget(null), revoke.reset())}
        onConfirm={() => target && revoke.mutate(target.id, { onSuccess: () => (notify('Token revoked'), setTarget(null)) })}
      >
        <Typography>Anything using this token stops working at once.</Typography>
        <ProblemAlert error={revoke.error} />
      </ConfirmDialog>
    </>
  );
}
