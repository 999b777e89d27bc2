//! Roles and the permissions they grant (ARCHITECTURE.md, "Roles").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::users::Role;

/// One thing a caller may be allowed to do. API-token scopes are sets of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See approved artifacts and their metadata.
    ArtifactsRead,
    /// See artifacts in every state (pending, quarantined, failed).
    ArtifactsReadAll,
    /// Create and upload artifacts, attach publisher signatures.
    ArtifactsWrite,
    /// Delete artifacts (own ones for publishers; any for admins, checked in the handler).
    ArtifactsDelete,
    /// Download approved artifacts.
    ArtifactsDownload,
    /// Release, rescan, manage policy exceptions.
    ArtifactsManage,
    /// Read scan findings.
    ScanResultsRead,
    /// Read and export the audit log.
    AuditRead,
    /// Scrape metrics.
    MetricsRead,
    /// Manage users and their roles.
    UsersManage,
    /// Create and revoke one's own API tokens.
    TokensManage,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::ArtifactsRead,
        Permission::ArtifactsReadAll,
        Permission::ArtifactsWrite,
        Permission::ArtifactsDelete,
        Permission::ArtifactsDownload,
        Permission::ArtifactsManage,
        Permission::ScanResultsRead,
        Permission::AuditRead,
        Permission::MetricsRead,
        Permission::UsersManage,
        Permission::TokensManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ArtifactsRead => "artifacts_read",
            Permission::ArtifactsReadAll => "artifacts_read_all",
            Permission::ArtifactsWrite => "artifacts_write",
            Permission::ArtifactsDelete => "artifacts_delete",
            Permission::ArtifactsDownload => "artifacts_download",
            Permission::ArtifactsManage => "artifacts_manage",
            Permission::ScanResultsRead => "scan_results_read",
            Permission::AuditRead => "audit_read",
            Permission::MetricsRead => "metrics_read",
            Permission::UsersManage => "users_manage",
            Permission::TokensManage => "tokens_manage",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a role may do.
pub fn permissions(role: Role) -> &'static [Permission] {
    use Permission::*;
    match role {
        Role::Admin => &Permission::ALL,
        Role::Publisher => &[
            ArtifactsRead,
            ArtifactsReadAll,
            ArtifactsWrite,
            ArtifactsDelete,
            ArtifactsDownload,
            ScanResultsRead,
            TokensManage,
        ],
        Role::Consumer => &[ArtifactsRead, ArtifactsDownload, TokensManage],
        Role::Auditor => &[ArtifactsRead, ArtifactsReadAll, ScanResultsRead, AuditRead, MetricsRead, TokensManage],
    }
}

/// The union of the permissions of `roles`, sorted and without duplicates.
pub fn permissions_of(roles: &[Role]) -> Vec<Permission> {
    let mut all: Vec<Permission> = roles.iter().flat_map(|r| permissions(*r).iter().copied()).collect();
    all.sort();
    all.dedup();
    all
}

/// Scopes as stored: a comma-separated list.
pub fn encode_scopes(scopes: &[Permission]) -> String {
    scopes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

pub fn decode_scopes(s: &str) -> Vec<Permission> {
    s.split(',').filter_map(Permission::parse).collect()
}
