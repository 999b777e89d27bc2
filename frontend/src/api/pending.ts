/**
 * Shapes of endpoints and fields the backend is adding now and that are not in
 * `openapi.json` yet (hand-written from the agreed contract). When the regenerated
 * `schema.d.ts` has them, replace each alias here with `Schemas['…']` (see types.ts) and
 * delete this file: nothing else imports it directly.
 */

/** `POST /api/artifacts/{id}/download-link` (artifacts_download). */
export interface DownloadLink {
  /** Same-origin path like `/api/download-links/<token>`; single use, valid ≤ 60 s. */
  url: string;
  /** Unix ms. */
  expires_at: number;
}

/** Latest scan's counts on list items (`GET /api/artifacts` items gain `severity`). */
export interface SeverityCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
  secrets: number;
  licenses: number;
}

/** Fields that list items and single artifacts gain. */
export interface PendingArtifactFields {
  /** Username of the owner. */
  owner?: string;
  severity?: SeverityCounts | null;
  /** On `failed` artifacts whose scanner was unavailable: `POST …/rescan` is allowed. */
  retryable?: boolean;
}

export type ArtifactSort = 'created_at' | 'name' | 'version' | 'size' | 'status';
export type SortOrder = 'asc' | 'desc';

/** `GET /api/artifacts/{id}/events`, oldest first. */
export interface ArtifactEvent {
  id: string;
  /** e.g. `dev.arca.artifact.approved` */
  type: string;
  /** Unix ms. */
  time: number;
  status: string;
  reason: string | null;
}

export interface RecentDenial {
  ts: number;
  actor: string;
  action: string;
  target: string;
  client_ip: string;
}

/** `GET /api/stats`; the null members are for callers without audit_read. */
export interface Stats<TArtifact> {
  by_status: Record<string, number>;
  findings: SeverityCounts;
  recent_uploads: TArtifact[];
  recent_denials: RecentDenial[] | null;
  dead_letters: number | null;
}

/** `GET /api/scanner`. */
export interface ScannerInfo {
  trivy_version: string;
  db_updated_at: string | null;
  db_age_hours: number | null;
  db_stale: boolean;
  last_update_error: string | null;
}

/** `GET /api/artifacts/{id}/signature` gains these. */
export interface PendingSignatureFields {
  signer?: { subject: string; issuer: string; not_before: number; not_after: number; serial: string };
  verified?: boolean;
  verification_error?: string | null;
}

/** `PUT /api/users/{id}` accepts this. */
export interface PendingUserUpdateFields {
  revoke_api_tokens?: boolean;
}

/** The new lifecycle status `signing` (passed policy, being signed). */
export type PendingStatus = 'signing';
