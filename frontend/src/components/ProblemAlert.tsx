import Alert, { type AlertProps } from '@mui/material/Alert';
import AlertTitle from '@mui/material/AlertTitle';
import { describeProblem, isProblem } from '@/lib/problem';

/** An API error as its title and detail: never raw JSON, never a blank page. */
export function ProblemAlert({ error, severity = 'error', action }: { error: unknown; severity?: AlertProps['severity']; action?: AlertProps['action'] }) {
  if (!error) return null;
  let title = 'Something went wrong';
  let detail = error instanceof Error ? error.message : String(error);
  let requestId: string | undefined;
  if (isProblem(error)) {
    ({ title, detail } = describeProblem(error));
    requestId = error.requestId;
  }
  return (
    <Alert severity={severity} role="alert" action={action} sx={{ my: 1 }}>
      <AlertTitle>{title}</AlertTitle>
      {detail}
      {requestId && (
        <span style={{ display: 'block', opacity: 0.7, fontSize: '0.8em', marginTop: 4 }}>Request id: {requestId}</span>
      )}
    </Alert>
  );
}
