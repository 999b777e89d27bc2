//! Roles and the permissions they grant (ARCHITECTURE.md, "Roles").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The four roles of ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Publisher,
    Consumer,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Publisher, Role::Consumer, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Consumer => "consumer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles as stored: a comma-separated list.
pub fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

pub fn decode_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

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

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A signed-in session: access token `jti`, refresh family `sid`, expiry (Unix s).
    Session { jti: String, sid: String, exp: i64 },
    /// An API token.
    ApiToken { id: String },
    /// The metrics scrape token.
    ScrapeToken,
}

/// The authenticated caller (put into the request's extensions by the access check).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    /// Current roles, read from the store on each request (not from the token), so that a
    /// role change or a disabled account takes effect at once.
    pub roles: Vec<Role>,
    /// Effective permissions: the roles' permissions, narrowed by an API token's scopes.
    pub permissions: Vec<Permission>,
    pub credential: Credential,
}

impl Principal {
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin) && self.can(Permission::UsersManage)
    }
}
