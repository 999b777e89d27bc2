//! Every operation the client calls: its `operationId`, method, path template, the query
//! parameters the client sends, and its request and response types. The client builds
//! every request from this table, and `tests/contract.rs` checks the table against the
//! server's OpenAPI document, so nothing here can silently drift from the server.

use std::marker::PhantomData;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::*;

/// The shape of a body, as the OpenAPI document names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// No body.
    None,
    /// Raw bytes (`application/octet-stream`).
    Bytes,
    /// Any JSON (an inline object in the document).
    Any,
    /// `#/components/schemas/<name>`.
    Named(&'static str),
    /// An array of that shape.
    Array(Box<Shape>),
}

/// A type that travels as a body: its shape in the document and how it is decoded.
pub trait Wire: Sized {
    fn shape() -> Shape;
    /// Decodes a success body.
    fn decode(body: &[u8]) -> Result<Self, String>;
}

macro_rules! named {
    ($($t:ident),* $(,)?) => {$(
        impl Wire for $t {
            fn shape() -> Shape {
                Shape::Named(stringify!($t))
            }
            fn decode(body: &[u8]) -> Result<Self, String> {
                serde_json::from_slice(body).map_err(|e| e.to_string())
            }
        }
    )*};
}

named!(
    LoginRequest,
    TokenResponse,
    RefreshRequest,
    Me,
    CreateToken,
    TokenInfo,
    CreatedToken,
    User,
    NewUser,
    UserUpdate,
    RoleInfo,
    NewArtifact,
    UploadTarget,
    Created,
    Received,
    PartsStatus,
    PartsRequest,
    PartTargets,
    Artifact,
    ArtifactPage,
    LifecycleEvent,
    Stats,
    NameOwners,
    Grant,
    DownloadLink,
    ScanResults,
    ReleaseRequest,
    Policy,
    ScannerStatus,
    Exception,
    NewException,
    ArtifactSignature,
    Resigned,
    NewPublisherSignature,
    PublisherSignature,
    AuditPage,
    Checkpoints,
    Verification,
    Health,
);

impl<T: Wire + DeserializeOwned> Wire for Vec<T> {
    fn shape() -> Shape {
        Shape::Array(Box::new(T::shape()))
    }
    fn decode(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}

/// No body (a request without one, or `204 No Content`).
impl Wire for () {
    fn shape() -> Shape {
        Shape::None
    }
    fn decode(_: &[u8]) -> Result<Self, String> {
        Ok(())
    }
}

/// Any JSON document.
impl Wire for serde_json::Value {
    fn shape() -> Shape {
        Shape::Any
    }
    fn decode(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}

/// A raw byte stream (downloads, uploads): never decoded by [`crate::Client::call`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bytes;

impl Wire for Bytes {
    fn shape() -> Shape {
        Shape::Bytes
    }
    fn decode(_: &[u8]) -> Result<Self, String> {
        Ok(Bytes)
    }
}

/// One operation of the API.
#[derive(Debug)]
pub struct Endpoint<Req, Resp> {
    pub operation_id: &'static str,
    pub method: Method,
    /// Path template, e.g. `/api/artifacts/{id}`.
    pub path: &'static str,
    /// Query parameters the client may send.
    pub query: &'static [&'static str],
    types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Endpoint<Req, Resp> {
    const fn new(
        operation_id: &'static str,
        method: Method,
        path: &'static str,
        query: &'static [&'static str],
    ) -> Self {
        Self { operation_id, method, path, query, types: PhantomData }
    }

    /// The path with its `{parameters}` replaced, in order, by `args` (percent-encoded).
    pub fn path_with(&self, args: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len() + 40);
        let mut args = args.iter();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            match args.next() {
                Some(arg) => out.push_str(&encode_segment(arg)),
                None => out.push_str(&rest[open..close]),
            }
            rest = &rest[close..];
        }
        out.push_str(rest);
        out
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A value of a request type for the contract test (every optional field set).
pub trait Example {
    fn example() -> Self;
}

impl Example for () {
    fn example() -> Self {}
}

impl Example for Bytes {
    fn example() -> Self {
        Bytes
    }
}

/// Visits every endpoint with its types (the contract test).
pub trait Visitor {
    fn visit<Req, Resp>(&mut self, endpoint: &Endpoint<Req, Resp>)
    where
        Req: Wire + Serialize + Example,
        Resp: Wire + Serialize;
}

macro_rules! endpoints {
    ($($(#[$doc:meta])* $const:ident = $method:ident $path:literal $id:literal $([$($q:literal),*])? : $req:ty => $resp:ty;)*) => {
        $(
            $(#[$doc])*
            pub const $const: Endpoint<$req, $resp> =
                Endpoint::new($id, Method::$method, $path, &[$($($q),*)?]);
        )*

        /// Every endpoint, for the contract test.
        pub fn visit_all(visitor: &mut impl Visitor) {
            $( visitor.visit(&$const); )*
        }

        /// `(operationId, method, path)` of every endpoint.
        pub const ALL: &[(&str, &str, &str)] = &[$(($id, stringify!($method), $path),)*];
    };
}

endpoints! {
    // system
    HEALTH = GET "/api/health" "getHealth": () => Health;
    // auth
    LOGIN = POST "/api/auth/login" "login": LoginRequest => TokenResponse;
    REFRESH = POST "/api/auth/refresh" "refreshSession": RefreshRequest => TokenResponse;
    LOGOUT = POST "/api/auth/logout" "logout": () => ();
    ME = GET "/api/auth/me" "getCurrentUser": () => Me;
    JWKS = GET "/api/auth/jwks" "getJwks": () => serde_json::Value;
    CREATE_TOKEN = POST "/api/tokens" "createToken": CreateToken => CreatedToken;
    LIST_TOKENS = GET "/api/tokens" "listTokens": () => Vec<TokenInfo>;
    REVOKE_TOKEN = DELETE "/api/tokens/{id}" "revokeToken": () => ();
    // users
    LIST_USERS = GET "/api/users" "listUsers": () => Vec<User>;
    CREATE_USER = POST "/api/users" "createUser": NewUser => User;
    UPDATE_USER = PUT "/api/users/{id}" "updateUser": UserUpdate => User;
    LIST_ROLES = GET "/api/roles" "listRoles": () => Vec<RoleInfo>;
    // upload
    CREATE_ARTIFACT = POST "/api/artifacts" "createArtifact": NewArtifact => Created;
    REISSUE_UPLOAD = POST "/api/artifacts/{id}/upload" "reissueUpload": () => UploadTarget;
    LIST_PARTS = GET "/api/artifacts/{id}/parts" "listUploadedParts": () => PartsStatus;
    PRESIGN_PARTS = POST "/api/artifacts/{id}/parts" "presignParts": PartsRequest => PartTargets;
    /// Arca's own upload URL (local store); the URL comes from the upload target.
    UPLOAD_BYTES = PUT "/api/uploads/{token}" "uploadBytes": Bytes => Received;
    COMPLETE_UPLOAD = POST "/api/artifacts/{id}/complete" "completeUpload": () => Artifact;
    // artifacts
    LIST_ARTIFACTS = GET "/api/artifacts" "listArtifacts"
        ["q", "name", "version", "status", "label", "sort", "order", "page", "per_page"]: () => ArtifactPage;
    GET_ARTIFACT = GET "/api/artifacts/{id}" "getArtifact": () => Artifact;
    ARTIFACT_EVENTS = GET "/api/artifacts/{id}/events" "listArtifactEvents": () => Vec<LifecycleEvent>;
    DELETE_ARTIFACT = DELETE "/api/artifacts/{id}" "deleteArtifact": () => ();
    STATS = GET "/api/stats" "getStats": () => Stats;
    NAME_OWNERS = GET "/api/names/{name}/owners" "listNameOwners": () => NameOwners;
    GRANT_NAME = POST "/api/names/{name}/owners" "grantNameOwner": Grant => NameOwners;
    REVOKE_NAME = DELETE "/api/names/{name}/owners/{username}" "revokeNameOwner": () => NameOwners;
    // download
    DOWNLOAD = GET "/api/artifacts/{id}/download" "downloadArtifact": () => Bytes;
    DOWNLOAD_LINK = POST "/api/artifacts/{id}/download-link" "createDownloadLink": () => DownloadLink;
    REDEEM_LINK = GET "/api/download-links/{token}" "redeemDownloadLink": () => Bytes;
    // scan
    SCAN_RESULTS = GET "/api/artifacts/{id}/scan-results" "getScanResults": () => ScanResults;
    RESCAN = POST "/api/artifacts/{id}/rescan" "rescanArtifact": () => ();
    RELEASE = POST "/api/artifacts/{id}/release" "releaseArtifact": ReleaseRequest => Artifact;
    POLICY = GET "/api/policy" "getPolicy": () => Policy;
    SCANNER = GET "/api/scanner" "getScanner": () => ScannerStatus;
    LIST_EXCEPTIONS = GET "/api/exceptions" "listExceptions" ["all"]: () => Vec<Exception>;
    CREATE_EXCEPTION = POST "/api/exceptions" "createException": NewException => Exception;
    REVOKE_EXCEPTION = DELETE "/api/exceptions/{id}" "revokeException": () => ();
    // sign
    SIGNATURE = GET "/api/artifacts/{id}/signature" "getArtifactSignature": () => ArtifactSignature;
    ATTACH_SIGNATURE = POST "/api/artifacts/{id}/signatures" "attachPublisherSignature": NewPublisherSignature => PublisherSignature;
    LIST_SIGNATURES = GET "/api/artifacts/{id}/signatures" "listPublisherSignatures": () => Vec<PublisherSignature>;
    RESIGN = POST "/api/admin/resign" "resignArtifacts": () => Resigned;
    // audit
    SEARCH_AUDIT = GET "/api/audit-logs" "searchAuditLogs"
        ["actor", "action", "target", "outcome", "since", "until", "cursor", "limit", "format"]: () => AuditPage;
    VERIFY_AUDIT = GET "/api/audit-logs/verify" "verifyAuditLog": () => Verification;
    AUDIT_CHECKPOINTS = GET "/api/audit-logs/checkpoints" "listAuditCheckpoints": () => Checkpoints;
}

// ---- examples of every request type (the contract test serialises them) ----

impl Example for LoginRequest {
    fn example() -> Self {
        Self { username: "admin".into(), password: "a-long-password".into(), refresh_token_in_body: true }
    }
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self { refresh_token: Some("r".into()) }
    }
}

impl Example for CreateToken {
    fn example() -> Self {
        Self { name: "ci".into(), scopes: vec!["artifacts_read".into()], expires_in_days: 30 }
    }
}

impl Example for NewUser {
    fn example() -> Self {
        Self { username: "alice".into(), password: "a-long-password".into(), roles: vec!["publisher".into()] }
    }
}

impl Example for UserUpdate {
    fn example() -> Self {
        Self {
            roles: Some(vec!["consumer".into()]),
            password: Some("a-long-password".into()),
            disabled: Some(false),
            revoke_api_tokens: Some(true),
        }
    }
}

impl Example for NewArtifact {
    fn example() -> Self {
        Self {
            name: "tool".into(),
            version: "1.2.0".into(),
            filename: "tool.tar.gz".into(),
            size: 1,
            sha256: "0".repeat(64),
            labels: [("os".to_owned(), "linux".to_owned())].into(),
            description: "a tool".into(),
        }
    }
}

impl Example for PartsRequest {
    fn example() -> Self {
        Self { parts: vec![PartRequest { number: 1, sha256: "0".repeat(64) }] }
    }
}

impl Example for Grant {
    fn example() -> Self {
        Self { username: "alice".into() }
    }
}

impl Example for ReleaseRequest {
    fn example() -> Self {
        Self { justification: "not reachable in our use".into() }
    }
}

impl Example for NewException {
    fn example() -> Self {
        Self {
            artifact_id: Some("id".into()),
            vulnerability_id: Some("CVE-2024-0001".into()),
            package: Some("openssl".into()),
            justification: "not reachable in our use".into(),
            expires_at: 1,
        }
    }
}

impl Example for NewPublisherSignature {
    fn example() -> Self {
        Self { signature: "MEUC".into(), certificate_chain: "-----BEGIN CERTIFICATE-----".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_filled_and_encoded() {
        assert_eq!(GET_ARTIFACT.path_with(&["abc"]), "/api/artifacts/abc");
        assert_eq!(REVOKE_NAME.path_with(&["tool", "a b/c"]), "/api/names/tool/owners/a%20b%2Fc");
        assert_eq!(LIST_ARTIFACTS.path_with(&[]), "/api/artifacts");
        assert_eq!(ALL.len(), 45);
    }
}
