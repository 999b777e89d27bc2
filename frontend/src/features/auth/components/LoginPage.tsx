import { useEffect, useState, type FormEvent } from 'react';
import Box from '@mui/material/Box';
import Paper from '@mui/material/Paper';
import TextField from '@mui/material/TextField';
import Button from '@mui/material/Button';
import Typography from '@mui/material/Typography';
import Alert from '@mui/material/Alert';
import { useAuth } from '@/lib/auth';
import { isProblem, type ApiProblem } from '@/lib/problem';
import { ProblemAlert } from '@/components/ProblemAlert';
import { formatWait } from '@/lib/problem';

/** Counts down a Retry-After so the user sees when to try again. */
function useCountdown(seconds: number | undefined) {
  const [left, setLeft] = useState(seconds ?? 0);
  useEffect(() => {
    setLeft(seconds ?? 0);
    if (!seconds) return;
    const t = setInterval(() => setLeft((s) => Math.max(0, s - 1)), 1000);
    return () => clearInterval(t);
  }, [seconds]);
  return left;
}

export function LoginPage() {
  const { login, reason } = useAuth();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiProblem | Error | null>(null);
  const wait = useCountdown(isProblem(error) ? error.retryAfter : undefined);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
      setPassword('');
    } finally {
      setBusy(false);
    }
  };

  return (
    <Box component="main" sx={{ minHeight: '100vh', display: 'grid', placeItems: 'center', p: 2, bgcolor: 'background.default' }}>
      <Paper component="form" onSubmit={submit} sx={{ p: 4, width: '100%', maxWidth: 400 }} aria-labelledby="login-title">
        <Typography id="login-title" variant="h5" component="h1" sx={{ fontWeight: 600, mb: 0.5 }}>
          Sign in to Arca
        </Typography>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
          The secure artifact manager.
        </Typography>
        {reason && !error && (
          <Alert severity="info" sx={{ mb: 2 }}>
            {reason}
          </Alert>
        )}
        <ProblemAlert error={error} />
        {wait > 0 && (
          <Typography role="timer" aria-live="polite" variant="body2" sx={{ mb: 1 }}>
            You can try again in {formatWait(wait)}.
          </Typography>
        )}
        <TextField
          label="Username"
          name="username"
          autoComplete="username"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          fullWidth
          required
          autoFocus
          margin="normal"
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          fullWidth
          required
          margin="normal"
        />
        <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy || wait > 0}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
      </Paper>
    </Box>
  );
}
