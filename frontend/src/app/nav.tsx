import type { ReactNode } from 'react';
import DashboardIcon from '@mui/icons-material/Dashboard';
import Inventory2Icon from '@mui/icons-material/Inventory2';
import CloudUploadIcon from '@mui/icons-material/CloudUpload';
import PolicyIcon from '@mui/icons-material/Policy';
import PeopleIcon from '@mui/icons-material/People';
import KeyIcon from '@mui/icons-material/Key';
import ReceiptLongIcon from '@mui/icons-material/ReceiptLong';
import type { Permission } from '@/api/types';

export interface NavItem {
  to: string;
  label: string;
  icon: ReactNode;
  /** Shown only to holders of this permission (the route checks it too). */
  permission: Permission;
}

export const NAV: NavItem[] = [
  { to: '/', label: 'Dashboard', icon: <DashboardIcon />, permission: 'artifacts_read' },
  { to: '/artifacts', label: 'Artifacts', icon: <Inventory2Icon />, permission: 'artifacts_read' },
  { to: '/upload', label: 'Upload', icon: <CloudUploadIcon />, permission: 'artifacts_write' },
  { to: '/policy', label: 'Policy & exceptions', icon: <PolicyIcon />, permission: 'artifacts_manage' },
  { to: '/users', label: 'Users', icon: <PeopleIcon />, permission: 'users_manage' },
  { to: '/tokens', label: 'API tokens', icon: <KeyIcon />, permission: 'tokens_manage' },
  { to: '/audit', label: 'Audit log', icon: <ReceiptLongIcon />, permission: 'audit_read' },
];
