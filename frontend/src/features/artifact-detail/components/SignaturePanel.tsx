import { useState, type FormEvent } from 'react';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import type { Artifact } from '@/api/types';
import { DateTime } from '@/components/DateTime';
import { CopyField } from '@/components/CopyButton';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useNotify } from '@/components/Notifier';
import { useAttachSignature, usePublisherSignatures, useSignature } from '../api/detail';
import { Field, Fields, Section } from './Section';

const RESULT_COLOR = { valid: 'success', invalid: 'error', untrusted: 'warning' } as const;

function AttachForm({ id }: { id: string }) {
  const [signature, setSignature] = useState('');
  const [chain, setChain] = useState('');
  const attach = useAttachSignature(id);
  const notify = useNotify();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    attach.mutate(
      { signature: signature.trim(), certificate_chain: chain.trim() },
      {
        onSuccess: (r) => {
          notify(`Signature recorded: ${r.result}`, r.result === 'valid' ? 'success' : 'warning');
          setSignature('');
          setChain('');
        },
      },
    );
  };
  const readFile = (set: (s: string) => void, base64: boolean) => async (f: File | undefined) => {
    if (!f || f.size > 1_000_000) return;
    if (!base64) return set(await f.text());
    const bytes = new Uint8Array(await f.arrayBuffer());
    let bin = '';
    bytes.forEach((b) => (bin += String.fromCharCode(b)));
    set(btoa(bin));
  };
  return (
    <Box component="form" onSubmit={submit} aria-label="Attach a publisher signature" sx={{ mt: 2 }}>
      <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
        Attach a publisher signature
      </Typography>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
        Sign with <code>openssl dgst -sha256 -sign key.pem -out sig.der FILE</code>, then paste the signature (base64) and your
        certificate chain (PEM), or pick the files.
      </Typography>
      <TextField label="Signature (base64 DER)" value={signature} onChange={(e) => setSignature(e.target.value)} fullWidth multiline minRows={2} required margin="dense" />
      <Button component="label" size="small">
        Signature file (DER)…
        <input type="file" hidden aria-label="Signature file" onChange={(e) => void readFile(setSignature, true)(e.target.files?.[0])} />
      </Button>
      <TextField label="Certificate chain (PEM)" value={chain} onChange={(e) => setChain(e.target.value)} fullWidth multiline minRows={3} required margin="dense" />
      <Button component="label" size="small">
        Chain file (PEM)…
        <input type="file" hidden aria-label="Certificate chain file" onChange={(e) => void readFile(setChain, false)(e.target.files?.[0])} />
      </Button>
      <ProblemAlert error={attach.error} />
      <Box sx={{ mt: 1 }}>
        <Button type="submit" variant="outlined" disabled={attach.isPending || !signature || !chain}>
          Attach signature
        </Button>
      </Box>
    </Box>
  );
}

export function SignaturePanel({ artifact, canAttach }: { artifact: Artifact; canAttach: boolean }) {
  const signed = artifact.status === 'approved';
  const sig = useSignature(artifact.id, signed);
  const publisher = usePublisherSignatures(artifact.id);
  const [showChain, setShowChain] = useState(false);
  const s = sig.data;
  return (
    <Section title="Signatures">
      <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
        Arca&apos;s signature
      </Typography>
      {!signed && <Typography variant="body2">Arca signs an artifact when it is approved; this one is {artifact.status.replace(/_/g, ' ')}.</Typography>}
      <ProblemAlert error={sig.error} />
      {s && (
        <>
          <Box sx={{ mb: 1 }}>
            {s.verified ? (
              <Chip size="small" label="signature verified" color="success" />
            ) : (
              <Chip size="small" label="signature does NOT verify" color="error" />
            )}
          </Box>
          {s.verification_error && <Alert severity="error">{s.verification_error}</Alert>}
          <Fields>
            <Field label="Algorithm">{s.algorithm}</Field>
            <Field label="Signed">
              <DateTime ms={s.signed_at} />
            </Field>
            <Field label="Digest">
              <CopyField value={s.digest} label="Copy the signed digest" />
            </Field>
            {s.signer && (
              <>
                <Field label="Signer">{s.signer.subject}</Field>
                <Field label="Issuer">{s.signer.issuer}</Field>
                <Field label="Valid">
                  <DateTime ms={s.signer.not_before} /> to <DateTime ms={s.signer.not_after} />
                </Field>
                <Field label="Serial">
                  <code>{s.signer.serial}</code>
                </Field>
              </>
            )}
            <Field label="Signature">
              <CopyField value={s.signature} label="Copy the signature (base64)" />
            </Field>
          </Fields>
          <Button size="small" onClick={() => setShowChain((v) => !v)} aria-expanded={showChain} sx={{ mt: 1 }}>
            {showChain ? 'Hide' : 'Show'} the certificate chain
          </Button>
          {showChain && (
            <Box component="pre" sx={{ fontSize: '0.75rem', overflowX: 'auto', bgcolor: 'action.hover', p: 1, borderRadius: 1 }} tabIndex={0} aria-label="Certificate chain">
              {s.certificate_chain}
            </Box>
          )}
        </>
      )}
      <Typography variant="subtitle2" component="h3" sx={{ mt: 2, mb: 1 }}>
        Publisher signatures
      </Typography>
      <ProblemAlert error={publisher.error} />
      {publisher.data && publisher.data.length === 0 && <Typography variant="body2">No publisher signature attached.</Typography>}
      {publisher.data && publisher.data.length > 0 && (
        <Table size="small" aria-label="Publisher signatures">
          <TableHead>
            <TableRow>
              <TableCell>Result</TableCell>
              <TableCell>Subject</TableCell>
              <TableCell>Reason</TableCell>
              <TableCell>Submitted by</TableCell>
              <TableCell>Checked</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {publisher.data.map((p) => (
              <TableRow key={p.id}>
                <TableCell>
                  <Chip size="small" label={p.result} color={RESULT_COLOR[p.result as keyof typeof RESULT_COLOR] ?? 'default'} />
                </TableCell>
                <TableCell>{p.subject ?? '—'}</TableCell>
                <TableCell>{p.reason}</TableCell>
                <TableCell>{p.submitted_by}</TableCell>
                <TableCell>
                  <DateTime ms={p.verified_at} />
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
      {canAttach && artifact.status !== 'deleted' && <AttachForm id={artifact.id} />}
    </Section>
  );
}
