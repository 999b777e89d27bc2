import Chip, { type ChipProps } from '@mui/material/Chip';

const COLORS: Record<string, ChipProps['color']> = {
  approved: 'success',
  quarantined: 'error',
  failed: 'error',
  deleted: 'default',
  scanning: 'info',
  signing: 'info',
  verifying: 'info',
  uploading: 'info',
  pending_upload: 'warning',
};

export function statusLabel(status: string): string {
  return status.replace(/_/g, ' ');
}

export function StatusChip({ status, size = 'small' }: { status: string; size?: ChipProps['size'] }) {
  return <Chip label={statusLabel(status)} color={COLORS[status] ?? 'default'} size={size} variant={status === 'deleted' ? 'outlined' : 'filled'} />;
}
