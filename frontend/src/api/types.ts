/**
 * The API's types, from the generated `schema.d.ts` (`npm run gen:api` from the server's
 * OpenAPI document). Features import types from here only.
 */
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type { paths };

export type Permission = Schemas['Permission'];
export type Role = Schemas['Role'];
export type ArtifactStatus = Schemas['Status'];
export type Artifact = Schemas['Artifact'];
export type ArtifactPage = Schemas['ArtifactPage'];
export type NewArtifact = Schemas['NewArtifact'];
export type UploadTarget = Schemas['UploadTarget'];
export type Created = Schemas['Created'];
export type PartsStatus = Schemas['PartsStatus'];
export type PartTargets = Schemas['PartTargets'];
export type PartTarget = Schemas['PartTarget'];
export type ScanResults = Schemas['ScanResults'];
export type ScanSummary = Schemas['ScanSummary'];
export type Findings = Schemas['Findings'];
export type Vulnerability = Schemas['Vulnerability'];
export type Secret = Schemas['Secret'];
export type License = Schemas['License'];
export type PolicyReason = Schemas['Reason'];
export type Policy = Schemas['Policy'];
export type PolicyException = Schemas['Exception'];
export type NewException = Schemas['NewException'];
export type ArtifactSignature = Schemas['ArtifactSignature'];
export type SignerInfo = Schemas['SignerInfo'];
export type PublisherSignature = Schemas['PublisherSignature'];
export type NewPublisherSignature = Schemas['NewPublisherSignature'];
export type User = Schemas['User'];
export type NewUser = Schemas['NewUser'];
export type UserUpdate = Schemas['UserUpdate'];
export type RoleInfo = Schemas['RoleInfo'];
export type TokenInfo = Schemas['TokenInfo'];
export type CreateToken = Schemas['CreateToken'];
export type CreatedToken = Schemas['CreatedToken'];
export type AuditEntry = Schemas['AuditEntry'];
export type AuditPage = Schemas['AuditPage'];
export type AuditVerification = Schemas['Verification'];
export type DeadLetter = Schemas['DeadLetter'];
export type Me = Schemas['Me'];
export type TokenResponse = Schemas['TokenResponse'];
export type Stats = Schemas['Stats'];
export type SeverityCounts = Schemas['Summary'];
export type RecentDenial = Schemas['Denial'];
export type ScannerInfo = Schemas['ScannerStatus'];
export type ArtifactEvent = Schemas['LifecycleEvent'];
export type DownloadLink = Schemas['DownloadLink'];
export type ExportLink = Schemas['ExportLink'];
export type Problem = Schemas['Problem'];
export type ProblemCode = Schemas['Problem']['code'];

/** `sort` of `GET /api/artifacts` (its OpenAPI entry documents the values). */
export type ArtifactSort = 'created_at' | 'name' | 'version' | 'size' | 'status';
export type SortOrder = 'asc' | 'desc';

export const STATUSES: ArtifactStatus[] = [
  'pending_upload',
  'uploading',
  'verifying',
  'scanning',
  'signing',
  'approved',
  'quarantined',
  'failed',
  'deleted',
];
export const FINAL_STATUSES: ArtifactStatus[] = ['approved', 'quarantined', 'failed', 'deleted'];
export const PERMISSIONS: Permission[] = [
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
];
export const ROLES: Role[] = ['admin', 'publisher', 'consumer', 'auditor'];
