import { useState } from 'react';
import { useNavigate } from 'react-router';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import FormControl from '@mui/material/FormControl';
import FormControlLabel from '@mui/material/FormControlLabel';
import FormLabel from '@mui/material/FormLabel';
import Radio from '@mui/material/Radio';
import RadioGroup from '@mui/material/RadioGroup';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import type { Artifact } from '@/api/types';
import { ConfirmDialog } from '@/components/ConfirmDialog';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useNotify } from '@/components/Notifier';
import { useCreateException, useDelete, useRelease, useRescan } from '../api/detail';

type Dialog = 'release' | 'exception' | 'delete' | 'rescan' | null;

function inDays(days: number): string {
  const d = new Date(Date.now() + days * 86_400_000);
  d.setSeconds(0, 0);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function AdminActions({
  artifact,
  canManage,
  canDelete,
  canRetry,
  suggestion,
}: {
  artifact: Artifact;
  canManage: boolean;
  canDelete: boolean;
  /** The owner may rescan a failed artifact whose scanner was unavailable. */
  canRetry: boolean;
  /** A finding to pre-fill the exception form with. */
  suggestion?: { vulnerability_id?: string; package?: string };
}) {
  const [open, setOpen] = useState<Dialog>(null);
  const [justification, setJustification] = useState('');
  const [scope, setScope] = useState<'artifact' | 'all'>('artifact');
  const [kind, setKind] = useState<'vulnerability' | 'package'>('vulnerability');
  const [subject, setSubject] = useState('');
  const [expires, setExpires] = useState(inDays(30));
  const [confirmName, setConfirmName] = useState('');
  const notify = useNotify();
  const navigate = useNavigate();
  const rescan = useRescan(artifact.id);
  const release = useRelease(artifact.id);
  const remove = useDelete(artifact.id);
  const exception = useCreateException();
  const close = () => {
    setOpen(null);
    rescan.reset();
    release.reset();
    remove.reset();
    exception.reset();
  };
  const openException = () => {
    setSubject(suggestion?.vulnerability_id ?? suggestion?.package ?? '');
    setKind(suggestion?.vulnerability_id ? 'vulnerability' : suggestion?.package ? 'package' : 'vulnerability');
    setOpen('exception');
  };
  const deleted = artifact.status === 'deleted';
  const expiresMs = new Date(expires).getTime();

  return (
    <>
      <Box sx={{ display: 'flex', gap: 1, flexWrap: 'wrap' }} role="group" aria-label="Administration">
        {(canManage || canRetry) && !deleted && (
          <Button variant="outlined" onClick={() => setOpen('rescan')}>
            Rescan
          </Button>
        )}
        {canManage && artifact.status === 'quarantined' && (
          <Button variant="outlined" color="warning" onClick={() => setOpen('release')}>
            Release
          </Button>
        )}
        {canManage && !deleted && (
          <Button variant="outlined" onClick={openException}>
            Create exception
          </Button>
        )}
        {canDelete && !deleted && (
          <Button variant="outlined" color="error" onClick={() => setOpen('delete')}>
            Delete
          </Button>
        )}
      </Box>

      <ConfirmDialog
        open={open === 'rescan'}
        title="Scan again"
        confirmLabel="Rescan"
        busy={rescan.isPending}
        onClose={close}
        onConfirm={() => rescan.mutate(undefined, { onSuccess: () => (notify('Rescan queued'), close()) })}
      >
        <Typography>Scan {artifact.name}@{artifact.version} again with the current vulnerability DB and policy.</Typography>
        <ProblemAlert error={rescan.error} />
      </ConfirmDialog>

      <ConfirmDialog
        open={open === 'release'}
        title="Release from quarantine"
        confirmLabel="Release"
        danger
        busy={release.isPending}
        disabled={justification.trim().length < 10}
        onClose={close}
        onConfirm={() =>
          release.mutate(justification.trim(), {
            onSuccess: () => {
              notify('Released');
              setJustification('');
              close();
            },
          })
        }
      >
        <Typography sx={{ mb: 1 }}>
          Releasing makes {artifact.name}@{artifact.version} downloadable despite: {artifact.status_reason ?? 'its findings'}. The
          justification is recorded in the audit log.
        </Typography>
        <TextField
          label="Justification"
          value={justification}
          onChange={(e) => setJustification(e.target.value)}
          fullWidth
          multiline
          minRows={3}
          required
          helperText="At least 10 characters: why is this acceptable?"
        />
        <ProblemAlert error={release.error} />
      </ConfirmDialog>

      <ConfirmDialog
        open={open === 'exception'}
        title="Create an exception"
        confirmLabel="Create exception"
        busy={exception.isPending}
        disabled={!subject.trim() || justification.trim().length < 10 || !(expiresMs > Date.now())}
        onClose={close}
        onConfirm={() =>
          exception.mutate(
            {
              artifact_id: scope === 'artifact' ? artifact.id : null,
              vulnerability_id: kind === 'vulnerability' ? subject.trim() : null,
              package: kind === 'package' ? subject.trim() : null,
              justification: justification.trim(),
              expires_at: expiresMs,
            },
            {
              onSuccess: () => {
                notify('Exception created; the policy is applied again shortly');
                setJustification('');
                close();
              },
            },
          )
        }
      >
        <FormControl sx={{ mb: 1 }}>
          <FormLabel id="exc-scope">Scope</FormLabel>
          <RadioGroup row aria-labelledby="exc-scope" value={scope} onChange={(e) => setScope(e.target.value as 'artifact' | 'all')}>
            <FormControlLabel value="artifact" control={<Radio />} label="This artifact" />
            <FormControlLabel value="all" control={<Radio />} label="All artifacts" />
          </RadioGroup>
        </FormControl>
        <FormControl sx={{ mb: 1, display: 'block' }}>
          <FormLabel id="exc-kind">Waive</FormLabel>
          <RadioGroup row aria-labelledby="exc-kind" value={kind} onChange={(e) => setKind(e.target.value as 'vulnerability' | 'package')}>
            <FormControlLabel value="vulnerability" control={<Radio />} label="A vulnerability id" />
            <FormControlLabel value="package" control={<Radio />} label="A package" />
          </RadioGroup>
        </FormControl>
        <TextField
          label={kind === 'vulnerability' ? 'Vulnerability id (e.g. CVE-2024-1234)' : 'Package name'}
          value={subject}
          onChange={(e) => setSubject(e.target.value)}
          fullWidth
          required
          margin="dense"
        />
        <TextField
          label="Expires"
          type="datetime-local"
          value={expires}
          onChange={(e) => setExpires(e.target.value)}
          fullWidth
          required
          margin="dense"
          slotProps={{ inputLabel: { shrink: true } }}
        />
        <TextField
          label="Justification"
          value={justification}
          onChange={(e) => setJustification(e.target.value)}
          fullWidth
          multiline
          minRows={2}
          required
          margin="dense"
          helperText="At least 10 characters"
        />
        <ProblemAlert error={exception.error} />
      </ConfirmDialog>

      <ConfirmDialog
        open={open === 'delete'}
        title="Delete this artifact"
        confirmLabel="Delete for good"
        danger
        busy={remove.isPending}
        disabled={confirmName !== artifact.name}
        onClose={close}
        onConfirm={() =>
          remove.mutate(undefined, {
            onSuccess: () => {
              notify('Deleted');
              close();
              navigate('/artifacts');
            },
          })
        }
      >
        <Typography sx={{ mb: 1 }}>
          Deleting destroys the artifact&apos;s encryption key and bytes: it cannot be undone. The record stays in the audit log. Type{' '}
          <strong>{artifact.name}</strong> to confirm.
        </Typography>
        <TextField label="Artifact name" value={confirmName} onChange={(e) => setConfirmName(e.target.value)} fullWidth autoComplete="off" />
        <ProblemAlert error={remove.error} />
      </ConfirmDialog>
    </>
  );
}
