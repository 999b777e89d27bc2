import { useRef, useState, type DragEvent, type FormEvent } from 'react';
import { Link as RouterLink } from 'react-router';
import Alert from '@mui/material/Alert';
import AlertTitle from '@mui/material/AlertTitle';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import IconButton from '@mui/material/IconButton';
import LinearProgress from '@mui/material/LinearProgress';
import Paper from '@mui/material/Paper';
import Stack from '@mui/material/Stack';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import DeleteIcon from '@mui/icons-material/Delete';
import UploadFileIcon from '@mui/icons-material/UploadFile';
import { formatBytes, formatDuration } from '@/lib/format';
import { PageHeader } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { StatusChip } from '@/components/StatusChip';
import { useUpload } from '../hooks/useUpload';
import type { UploadState } from '../lib/upload-engine';

const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Guesses name and version from `tool-1.2.3.tar.gz`. */
export function guessFromFilename(filename: string): { name: string; version: string } {
  const base = filename.replace(/\.(tar\.gz|tgz|tar|zip|whl|jar|gz|bin|json)$/i, '');
  const m = /^(.*?)[-_]v?(\d+(?:\.\d+)*(?:[-+.][0-9A-Za-z.-]+)?)$/.exec(base);
  if (m && m[1]) return { name: m[1].toLowerCase(), version: m[2] ?? '' };
  return { name: base.toLowerCase().replace(/[^a-z0-9._-]/g, '-'), version: '' };
}

const PHASES: Record<UploadState['phase'], string> = {
  idle: '',
  hashing: 'Computing SHA-256',
  creating: 'Declaring the artifact',
  uploading: 'Uploading',
  completing: 'Verifying size and digest',
  processing: 'Scanning, applying policy and signing',
  done: 'Done',
  error: 'Failed',
  cancelled: 'Cancelled',
};

function Progress({ state }: { state: UploadState }) {
  const hashing = state.phase === 'hashing';
  const value = state.total === 0 ? 100 : ((hashing ? state.hashed : state.sent) / state.total) * 100;
  const active = ['hashing', 'creating', 'uploading', 'completing', 'processing'].includes(state.phase);
  return (
    <Box aria-live="polite">
      <Typography variant="subtitle1" sx={{ fontWeight: 600 }}>
        {PHASES[state.phase]}
        {state.artifact && ['processing', 'done'].includes(state.phase) && (
          <Box component="span" sx={{ ml: 1 }}>
            <StatusChip status={state.artifact.status} />
          </Box>
        )}
      </Typography>
      {active && state.phase !== 'processing' && (
        <LinearProgress
          variant={state.phase === 'creating' || state.phase === 'completing' ? 'indeterminate' : 'determinate'}
          value={Math.min(100, value)}
          aria-label={hashing ? 'Hashing progress' : 'Upload progress'}
          sx={{ height: 8, borderRadius: 1, my: 1 }}
        />
      )}
      {state.phase === 'processing' && <LinearProgress aria-label="Processing" sx={{ my: 1 }} />}
      {(hashing || state.phase === 'uploading') && (
        <Typography variant="body2" data-testid="upload-numbers">
          {formatBytes(hashing ? state.hashed : state.sent)} of {formatBytes(state.total)}
          {state.phase === 'uploading' && state.speed !== null && ` · ${formatBytes(state.speed)}/s`}
          {state.phase === 'uploading' && state.eta !== null && ` · ${formatDuration(state.eta)} left`}
          {state.partCount !== null && ` · part ${state.partsDone} of ${state.partCount} done`}
        </Typography>
      )}
      {state.note && (
        <Typography variant="body2" color="text.secondary">
          {state.note}
        </Typography>
      )}
    </Box>
  );
}

function Outcome({ state }: { state: UploadState }) {
  const a = state.artifact;
  if (state.phase !== 'done' || !a) return null;
  const link = (
    <Button component={RouterLink} to={`/artifacts/${a.id}`} size="small">
      Open the artifact
    </Button>
  );
  if (a.status === 'approved')
    return (
      <Alert severity="success" action={link}>
        <AlertTitle>Approved</AlertTitle>
        {a.name}@{a.version} passed the scan and policy and is signed; it can be downloaded.
      </Alert>
    );
  if (a.status === 'quarantined' || a.status === 'failed')
    return (
      <Alert severity="error" action={link}>
        <AlertTitle>{a.status === 'quarantined' ? 'Quarantined' : 'Failed'}</AlertTitle>
        {a.status_reason ?? 'No reason given.'}
        {a.policy_reasons.length > 0 && (
          <ul style={{ margin: '4px 0 0', paddingLeft: 20 }}>
            {a.policy_reasons.map((r, i) => (
              <li key={i}>
                <strong>{r.rule}</strong>: {r.detail}
              </li>
            ))}
          </ul>
        )}
      </Alert>
    );
  return (
    <Alert severity="info" action={link}>
      {a.name}@{a.version} is {a.status.replace(/_/g, ' ')}.
    </Alert>
  );
}

export function UploadPage() {
  const { state, start, cancel, reset } = useUpload();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [version, setVersion] = useState('');
  const [description, setDescription] = useState('');
  const [labels, setLabels] = useState<{ key: string; value: string }[]>([]);
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const busy = ['hashing', 'creating', 'uploading', 'completing', 'processing'].includes(state.phase);

  const choose = (f: File | undefined) => {
    if (!f) return;
    reset();
    setFile(f);
    const guess = guessFromFilename(f.name);
    if (!name) setName(guess.name);
    if (!version) setVersion(guess.version);
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    choose(e.dataTransfer.files[0]);
  };

  const nameError = name !== '' && !NAME.test(name);
  const versionError = version !== '' && !VERSION.test(version);
  const labelKeys = labels.map((l) => l.key.trim()).filter(Boolean);
  const duplicateLabel = new Set(labelKeys).size !== labelKeys.length;
  const valid = file && name && version && !nameError && !versionError && !duplicateLabel;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!valid || !file) return;
    const labelMap: Record<string, string> = {};
    for (const l of labels) if (l.key.trim()) labelMap[l.key.trim()] = l.value;
    void start({ file, name, version, labels: labelMap, description });
  };

  return (
    <>
      <PageHeader title="Upload an artifact" subtitle="Arca computes its SHA-256 in your browser, uploads it, then verifies, scans and signs it." />
      <Paper component="form" onSubmit={submit} variant="outlined" sx={{ p: 3, maxWidth: 820 }} aria-label="Upload form">
        <Box
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
          sx={{
            border: '2px dashed',
            borderColor: dragging ? 'primary.main' : 'divider',
            borderRadius: 2,
            p: 3,
            textAlign: 'center',
            bgcolor: dragging ? 'action.hover' : 'transparent',
            mb: 2,
          }}
        >
          <UploadFileIcon fontSize="large" color="action" aria-hidden />
          <Typography sx={{ my: 1 }}>{file ? `${file.name} · ${formatBytes(file.size)}` : 'Drop a file here, or'}</Typography>
          <input
            ref={input}
            id="upload-file"
            type="file"
            hidden
            onChange={(e) => choose(e.target.files?.[0])}
            aria-label="File to upload"
            data-testid="file-input"
          />
          <Button variant="outlined" onClick={() => input.current?.click()} disabled={busy}>
            {file ? 'Choose another file' : 'Choose a file'}
          </Button>
        </Box>
        <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2}>
          <TextField label="Name" value={name} onChange={(e) => setName(e.target.value)} required fullWidth disabled={busy} error={nameError} helperText={nameError ? 'Lowercase letters, digits, dot, dash, underscore' : ' '} />
          <TextField label="Version" value={version} onChange={(e) => setVersion(e.target.value)} required fullWidth disabled={busy} error={versionError} helperText={versionError ? 'Letters, digits, dot, plus, dash, underscore' : ' '} />
        </Stack>
        <TextField label="Description" value={description} onChange={(e) => setDescription(e.target.value)} fullWidth multiline minRows={2} disabled={busy} sx={{ mb: 2 }} />
        <Typography variant="subtitle2" component="h2" sx={{ mb: 1 }}>
          Labels
        </Typography>
        {labels.map((l, i) => (
          <Stack key={i} direction="row" spacing={1} sx={{ mb: 1, alignItems: 'center' }}>
            <TextField size="small" label={`Label ${i + 1} key`} value={l.key} disabled={busy} onChange={(e) => setLabels(labels.map((x, j) => (j === i ? { ...x, key: e.target.value } : x)))} />
            <TextField size="small" label={`Label ${i + 1} value`} value={l.value} disabled={busy} onChange={(e) => setLabels(labels.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))} />
            <IconButton aria-label={`Remove label ${i + 1}`} onClick={() => setLabels(labels.filter((_, j) => j !== i))} disabled={busy}>
              <DeleteIcon />
            </IconButton>
          </Stack>
        ))}
        {duplicateLabel && <Alert severity="warning">Each label key may appear once.</Alert>}
        <Button onClick={() => setLabels([...labels, { key: '', value: '' }])} disabled={busy} size="small">
          Add a label
        </Button>
        <Box sx={{ display: 'flex', gap: 1, mt: 3 }}>
          <Button type="submit" variant="contained" disabled={!valid || busy}>
            Upload
          </Button>
          {busy && (
            <Button onClick={cancel} color="warning">
              Cancel upload
            </Button>
          )}
        </Box>
      </Paper>
      {state.phase !== 'idle' && (
        <Paper variant="outlined" sx={{ p: 3, mt: 2, maxWidth: 820 }} data-testid="upload-status">
          <Progress state={state} />
          {state.phase === 'error' && <ProblemAlert error={state.error} />}
          <Outcome state={state} />
        </Paper>
      )}
    </>
  );
}
