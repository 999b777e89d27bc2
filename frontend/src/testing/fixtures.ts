import type { Artifact, Permission, Role, Vulnerability } from '@/api/types';
import type { Identity } from '@/lib/session';

export const ROLE_PERMISSIONS: Record<Role, Permission[]> = {
  admin: [
    'artifacts_read',
    'artifacts_read_all',
    'artifacts_write',
    'artifacts_delete',
    'artifacts_download',
    'artifacts_manage',
    'scan_results_read',
    'audit_read',
    'metrics_read',
    'users_manage',
    'tokens_manage',
  ],
  publisher: ['artifacts_read', 'artifacts_read_all', 'artifacts_write', 'artifacts_delete', 'artifacts_download', 'scan_results_read', 'tokens_manage'],
  consumer: ['artifacts_read', 'artifacts_download', 'tokens_manage'],
  auditor: ['artifacts_read', 'artifacts_read_all', 'scan_results_read', 'audit_read', 'metrics_read', 'tokens_manage'],
};

export function identityFor(role: Role): Identity {
  return { id: `u-${role}`, username: role, roles: [role], permissions: ROLE_PERMISSIONS[role] };
}

let n = 0;
export function makeArtifact(patch: Partial<Artifact> = {}): Artifact {
  n += 1;
  return {
    id: `a-${n}`,
    name: `tool${n}`,
    version: '1.0.0',
    filename: `tool${n}.tar.gz`,
    size: 1024 * n,
    sha256: 'ab'.repeat(32),
    labels: { os: 'linux' },
    description: '',
    status: 'approved',
    policy_reasons: [],
    retryable: false,
    owner_id: 'u-publisher',
    owner: 'publisher',
    severity: { critical: 0, high: 1, medium: 2, low: 0, unknown: 0, secrets: 0, licenses: 1 },
    created_at: Date.UTC(2025, 0, 2, 3, 4, 5),
    updated_at: Date.UTC(2025, 0, 2, 3, 5, 5),
    deleted_at: null,
    ...patch,
  };
}

export function vuln(id: string, severity: string, fixed = '', pkg = 'openssl', cvss: number | null = null): Vulnerability {
  return { id, severity, fixed, package: pkg, installed: '1.0.0', title: `${id} in ${pkg}`, url: `https://avd.aquasec.com/nvd/${id.toLowerCase()}`, target: 'rootfs', cvss_score: cvss };
}
