import Chip from '@mui/material/Chip';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Typography from '@mui/material/Typography';
import type { Artifact } from '@/api/types';
import { DateTime } from '@/components/DateTime';
import { StatusChip } from '@/components/StatusChip';
import { Loading } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { useEvents } from '../api/detail';
import { Section } from './Section';

export function Timeline({ artifact }: { artifact: Artifact }) {
  const { data, error, isPending } = useEvents(artifact.id, artifact.updated_at);
  return (
    <Section title="Status timeline">
      {isPending && <Loading label="Loading the timeline" />}
      <ProblemAlert error={error} />
      {data && data.length === 0 && <Typography variant="body2">No lifecycle event yet.</Typography>}
      {data && data.length > 0 && (
        <List dense aria-label="Lifecycle events">
          {data.map((e) => (
            <ListItem key={e.id} disableGutters sx={{ gap: 2 }}>
              {e.status ? <StatusChip status={e.status} /> : <Chip size="small" variant="outlined" label={e.type.replace('dev.arca.artifact.', '')} />}
              <ListItemText
                primary={<DateTime ms={e.time} />}
                secondary={
                  <>
                    <code>{e.type.replace('dev.arca.artifact.', '')}</code>
                    {e.reason ? ` · ${e.reason}` : ''}
                  </>
                }
              />
            </ListItem>
          ))}
        </List>
      )}
    </Section>
  );
}
