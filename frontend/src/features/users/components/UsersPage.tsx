import { useState } from 'react';
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
import { ROLES, type Role, type User } from '@/api/types';
import { useAuth } from '@/lib/auth';
import { ConfirmDialog } from '@/components/ConfirmDialog';
import { DateTime } from '@/components/DateTime';
import { Loading, PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useNotify } from '@/components/Notifier';
import { useCreateUser, useUpdateUser, useUsers } from '../api/users';

const ROLE_HELP: Record<Role, string> = {
  admin: 'everything',
  publisher: 'uploads and manages own artifacts',
  consumer: 'downloads approved artifacts',
  auditor: 'reads metadata, audit log and metrics',
};

function RolePicker({ value, onChange, legend }: { value: Role[]; onChange: (r: Role[]) => void; legend: string }) {
  return (
    <Box component="fieldset" sx={{ border: 0, p: 0, m: 0, mt: 1 }}>
      <FormLabel component="legend">{legend}</FormLabel>
      <FormGroup>
        {ROLES.map((r) => (
          <FormControlLabel
            key={r}
            control={<Checkbox checked={value.includes(r)} onChange={(e) => onChange(e.target.checked ? [...value, r] : value.filter((x) => x !== r))} />}
            label={`${r} — ${ROLE_HELP[r]}`}
          />
        ))}
      </FormGroup>
    </Box>
  );
}

type Dialog = { kind: 'create' } | { kind: 'roles'; user: User } | { kind: 'password'; user: User } | { kind: 'disable'; user: User } | null;

export function UsersPage() {
  const { data, error, isPending } = useUsers();
  const { identity } = useAuth();
  const create = useCreateUser();
  const update = useUpdateUser();
  const notify = useNotify();
  const [dialog, setDialog] = useState<Dialog>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [roles, setRoles] = useState<Role[]>(['consumer']);
  const [revokeTokens, setRevokeTokens] = useState(true);

  const open = (d: Dialog) => {
    create.reset();
    update.reset();
    setPassword('');
    setRevokeTokens(true);
    if (d?.kind === 'create') {
      setUsername('');
      setRoles(['consumer']);
    }
    if (d?.kind === 'roles') setRoles(d.user.roles);
    setDialog(d);
  };
  const close = () => setDialog(null);
  const done = (message: string) => () => {
    notify(message);
    close();
  };

  return (
    <>
      <PageHeader title="Users" actions={<Button variant="contained" onClick={() => open({ kind: 'create' })}>Create user</Button>} />
      <ProblemAlert error={error} />
      {isPending && <Loading label="Loading users" />}
      {data && (
        <TableContainer component={Paper} variant="outlined">
          <Table size="small" aria-label="Users">
            <TableHead>
              <TableRow>
                <TableCell>Username</TableCell>
                <TableCell>Roles</TableCell>
                <TableCell>State</TableCell>
                <TableCell>Created</TableCell>
                <TableCell>Actions</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {data.map((u) => (
                <TableRow key={u.id}>
                  <TableCell sx={{ fontWeight: 600 }}>
                    {u.username}
                    {u.id === identity?.id && ' (you)'}
                  </TableCell>
                  <TableCell>
                    {u.roles.map((r) => (
                      <Chip key={r} label={r} size="small" sx={{ mr: 0.5 }} />
                    ))}
                  </TableCell>
                  <TableCell>{u.disabled ? <Chip size="small" color="default" label="disabled" /> : <Chip size="small" color="success" label="active" />}</TableCell>
                  <TableCell>
                    <DateTime ms={u.created_at} />
                  </TableCell>
                  <TableCell>
                    <Box sx={{ display: 'flex', gap: 0.5, flexWrap: 'wrap' }}>
                      <Button size="small" onClick={() => open({ kind: 'roles', user: u })} aria-label={`Roles of ${u.username}`}>
                        Roles
                      </Button>
                      <Button size="small" onClick={() => open({ kind: 'password', user: u })} aria-label={`Reset password of ${u.username}`}>
                        Reset password
                      </Button>
                      {u.disabled ? (
                        <Button size="small" onClick={() => update.mutate({ id: u.id, update: { disabled: false } }, { onSuccess: () => notify(`${u.username} enabled`) })} aria-label={`Enable ${u.username}`}>
                          Enable
                        </Button>
                      ) : (
                        <Button size="small" color="error" onClick={() => open({ kind: 'disable', user: u })} aria-label={`Disable ${u.username}`} disabled={u.id === identity?.id}>
                          Disable
                        </Button>
                      )}
                    </Box>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </TableContainer>
      )}

      <ConfirmDialog
        open={dialog?.kind === 'create'}
        title="Create a user"
        confirmLabel="Create"
        busy={create.isPending}
        disabled={!username || password.length < 12 || roles.length === 0}
        onClose={close}
        onConfirm={() => create.mutate({ username: username.trim(), password, roles }, { onSuccess: done('User created') })}
      >
        <TextField label="Username" value={username} onChange={(e) => setUsername(e.target.value)} fullWidth required margin="dense" autoComplete="off" />
        <TextField label="Initial password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} fullWidth required margin="dense" helperText="At least 12 characters" autoComplete="new-password" />
        <RolePicker value={roles} onChange={setRoles} legend="Roles" />
        <ProblemAlert error={create.error} />
      </ConfirmDialog>

      {dialog?.kind === 'roles' && (
        <ConfirmDialog
          open
          title={`Roles of ${dialog.user.username}`}
          confirmLabel="Save roles"
          busy={update.isPending}
          disabled={roles.length === 0}
          onClose={close}
          onConfirm={() => update.mutate({ id: dialog.user.id, update: { roles } }, { onSuccess: done('Roles saved') })}
        >
          <RolePicker value={roles} onChange={setRoles} legend="Roles" />
          <ProblemAlert error={update.error} />
        </ConfirmDialog>
      )}

      {dialog?.kind === 'password' && (
        <ConfirmDialog
          open
          title={`Reset the password of ${dialog.user.username}`}
          confirmLabel="Set password"
          busy={update.isPending}
          disabled={password.length < 12}
          onClose={close}
          onConfirm={() => update.mutate({ id: dialog.user.id, update: { password, revoke_api_tokens: revokeTokens } }, { onSuccess: done('Password changed; sessions ended') })}
        >
          <TextField label="New password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} fullWidth required margin="dense" helperText="At least 12 characters" autoComplete="new-password" />
          <FormControlLabel control={<Checkbox checked={revokeTokens} onChange={(e) => setRevokeTokens(e.target.checked)} />} label="Also revoke this user's API tokens" />
          <ProblemAlert error={update.error} />
        </ConfirmDialog>
      )}

      {dialog?.kind === 'disable' && (
        <ConfirmDialog
          open
          title={`Disable ${dialog.user.username}`}
          confirmLabel="Disable"
          danger
          busy={update.isPending}
          onClose={close}
          onConfirm={() => update.mutate({ id: dialog.user.id, update: { disabled: true, revoke_api_tokens: revokeTokens } }, { onSuccess: done('User disabled') })}
        >
          <Typography>The user can no longer sign in; their sessions end.</Typography>
          <FormControlLabel control={<Checkbox checked={revokeTokens} onChange={(e) => setRevokeTokens(e.target.checked)} />} label="Also revoke this user's API tokens" />
          <ProblemAlert error={update.error} />
        </ConfirmDialog>
      )}
    </>
  );
}
