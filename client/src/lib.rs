//! `arca-client`: the typed client of Arca's HTTP API, used by the `arca` CLI, the
//! end-to-end tests and the benchmarks. Every request is built from the endpoint table in
//! [`endpoints`], which a test checks against the server's OpenAPI document. The upload
//! flow (create → PUT or multipart, resume → complete → wait for a final status) and the
//! verified download live here, once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde::Serialize;

pub mod endpoints;
mod error;
pub mod progress;
pub mod transfer;
pub mod trust;
pub mod types;

pub use endpoints::{Endpoint, Wire};
pub use error::{Error, Problem, Result};
pub use progress::{Phase, Progress, Report};
pub use transfer::{safe_filename, Downloaded, PushOptions, Source};
pub use types::*;

/// How to reach and trust a server.
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    server: String,
    anchors: Vec<Vec<u8>>,
    token: Option<String>,
    connect_timeout: Option<Duration>,
    http1_only: bool,
}

impl ClientBuilder {
    /// Trusts the certificates of this PEM (a CA, or the server's self-signed certificate)
    /// and **only** them: with an anchor pinned, the system's roots are not used for Arca.
    pub fn pin_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.anchors.push(pem.into());
        self
    }

    /// An access token or API token sent as `Authorization: Bearer`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// HTTP/1.1 only (benchmarks compare the protocols); default: HTTP/2 when offered.
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    pub fn build(self) -> Result<Client> {
        let server = self.server.trim_end_matches('/').to_owned();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(Error::Invalid(format!("{server}: the server URL must start with https:// or http://")));
        }
        let mut certs = Vec::new();
        for pem in &self.anchors {
            let bundle = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Invalid(format!("the trusted certificate is not PEM: {e}")))?;
            if bundle.is_empty() {
                return Err(Error::Invalid("the trusted certificate file holds no certificate".into()));
            }
            certs.extend(bundle);
        }
        let base = |pinned: bool| {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .min_tls_version(reqwest::tls::Version::TLS_1_2)
                .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(30)))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("arca-client/", env!("CARGO_PKG_VERSION")));
            if self.http1_only {
                b = b.http1_only();
            }
            if pinned && !certs.is_empty() {
                b = b.tls_built_in_root_certs(false);
            }
            for cert in &certs {
                b = b.add_root_certificate(cert.clone());
            }
            b.build().map_err(|e| Error::transport("HTTP client", e))
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http: base(true)?,
                store: base(false)?,
                server,
                token: RwLock::new(self.token),
                pinned: !certs.is_empty(),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    /// Requests to Arca: only the pinned anchor is trusted, redirects are not followed.
    http: reqwest::Client,
    /// Requests to an object store's presigned URLs: the system's roots and the anchor.
    store: reqwest::Client,
    server: String,
    token: RwLock<Option<String>>,
    pinned: bool,
}

/// A client of one Arca server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    pub fn builder(server: impl Into<String>) -> ClientBuilder {
        ClientBuilder { server: server.into(), ..ClientBuilder::default() }
    }

    /// The server's base URL (no trailing slash).
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Whether a trust anchor is pinned (the system's roots are then not used).
    pub fn is_pinned(&self) -> bool {
        self.inner.pinned
    }

    /// The token sent with every request (after [`Client::login`], the access token).
    pub fn set_token(&self, token: Option<String>) {
        if let Ok(mut t) = self.inner.token.write() {
            *t = token;
        }
    }

    pub fn token(&self) -> Option<String> {
        self.inner.token.read().ok().and_then(|t| t.clone())
    }

    /// The underlying HTTP client for Arca (pinned trust, no redirects).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.server)
    }

    /// Whether `url` is on this server (then it is sent with the pinned client).
    fn is_own(&self, url: &str) -> bool {
        url.strip_prefix(&self.inner.server).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// A client for a URL handed out by the API (upload URLs, presigned store URLs):
    /// never sent with Arca's credentials.
    pub(crate) fn for_url(&self, url: &str) -> &reqwest::Client {
        if self.is_own(url) {
            &self.inner.http
        } else {
            &self.inner.store
        }
    }

    /// A request for `endpoint` with its path parameters, authorised with the token:
    /// for callers that want the raw response (tests of error answers).
    pub fn request<Req, Resp>(&self, endpoint: &Endpoint<Req, Resp>, args: &[&str]) -> reqwest::RequestBuilder {
        let mut request = self.inner.http.request(endpoint.method.clone(), self.url(&endpoint.path_with(args)));
        if let Some(token) = self.token() {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends `request`; an error status becomes [`Error::Api`].
    pub async fn send(&self, operation: &'static str, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport(format!("{operation}: cannot reach {}", self.server()), e))?;
        check(response).await
    }

    /// Calls `endpoint` with a JSON body (or none, for `()`) and optional query parameters,
    /// and decodes the answer.
    pub async fn call<Req, Resp>(
        &self,
        endpoint: &Endpoint<Req, Resp>,
        args: &[&str],
        body: Option<&Req>,
        query: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Resp>
    where
        Req: Serialize,
        Resp: Wire,
    {
        let mut request = self.request(endpoint, args);
        if let Some(query) = query {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(endpoint.operation_id, request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::transport(format!("{}: reading the answer", endpoint.operation_id), e))?;
        Resp::decode(&bytes).map_err(|detail| Error::Decode { operation: endpoint.operation_id, detail })
    }

    /// Calls an endpoint that takes no body.
    async fn call0<Resp: Wire>(&self, endpoint: &Endpoint<(), Resp>, args: &[&str]) -> Result<Resp> {
        self.call(endpoint, args, None, None::<&()>).await
    }

    async fn post<Req: Serialize, Resp: Wire>(
        &self,
        endpoint: &Endpoint<Req, Resp>,
        args: &[&str],
        body: &Req,
    ) -> Result<Resp> {
        self.call(endpoint, args, Some(body), None::<&()>).await
    }

    // ---- system ----

    pub async fn health(&self) -> Result<Health> {
        self.call0(&endpoints::HEALTH, &[]).await
    }

    // ---- auth ----

    /// Signs in; the access token is used for the following requests.
    pub async fn login(&self, username: &str, password: &str) -> Result<TokenResponse> {
        let body =
            LoginRequest { username: username.to_owned(), password: password.to_owned(), refresh_token_in_body: true };
        let tokens = self.call(&endpoints::LOGIN, &[], Some(&body), None::<&()>).await?;
        self.set_token(Some(tokens.access_token.clone()));
        Ok(tokens)
    }

    /// Exchanges a refresh token (single use) for new tokens; the access token is used next.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse> {
        let body = RefreshRequest { refresh_token: Some(refresh_token.to_owned()) };
        let tokens = self.call(&endpoints::REFRESH, &[], Some(&body), None::<&()>).await?;
        self.set_token(Some(tokens.access_token.clone()));
        Ok(tokens)
    }

    pub async fn logout(&self) -> Result<()> {
        self.call0(&endpoints::LOGOUT, &[]).await
    }

    pub async fn me(&self) -> Result<Me> {
        self.call0(&endpoints::ME, &[]).await
    }

    pub async fn jwks(&self) -> Result<serde_json::Value> {
        self.call0(&endpoints::JWKS, &[]).await
    }

    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken> {
        self.post(&endpoints::CREATE_TOKEN, &[], request).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.call0(&endpoints::LIST_TOKENS, &[]).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.call0(&endpoints::REVOKE_TOKEN, &[id]).await
    }

    // ---- users ----

    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.call0(&endpoints::LIST_USERS, &[]).await
    }

    pub async fn create_user(&self, user: &NewUser) -> Result<User> {
        self.post(&endpoints::CREATE_USER, &[], user).await
    }

    pub async fn update_user(&self, id: &str, update: &UserUpdate) -> Result<User> {
        self.post(&endpoints::UPDATE_USER, &[id], update).await
    }

    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        self.call0(&endpoints::LIST_ROLES, &[]).await
    }

    // ---- upload ----

    /// Declares an artifact; the answer says where to send its bytes.
    pub async fn create_artifact(&self, artifact: &NewArtifact) -> Result<Created> {
        self.post(&endpoints::CREATE_ARTIFACT, &[], artifact).await
    }

    /// A new upload target for an artifact still waiting for its bytes.
    pub async fn reissue_upload(&self, id: &str) -> Result<UploadTarget> {
        self.call0(&endpoints::REISSUE_UPLOAD, &[id]).await
    }

    pub async fn list_parts(&self, id: &str) -> Result<PartsStatus> {
        self.call0(&endpoints::LIST_PARTS, &[id]).await
    }

    /// Presigned URLs for parts, each bound to its SHA-256.
    pub async fn presign_parts(&self, id: &str, parts: Vec<PartRequest>) -> Result<PartTargets> {
        self.post(&endpoints::PRESIGN_PARTS, &[id], &PartsRequest { parts }).await
    }

    /// Sends bytes to an upload URL (Arca's own, or an object store's presigned one) with
    /// the headers the target named; the raw response (tests inspect refusals).
    pub async fn put_to(
        &self,
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        length: u64,
        body: reqwest::Body,
    ) -> Result<reqwest::Response> {
        let mut request = self.for_url(url).put(url).header(reqwest::header::CONTENT_LENGTH, length).body(body);
        if !headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        }
        for (k, v) in headers {
            request = request.header(k.as_str(), v.as_str());
        }
        request.send().await.map_err(|e| Error::transport("upload", e))
    }

    /// Checks size and SHA-256 and hands the artifact to scanning.
    pub async fn complete(&self, id: &str) -> Result<Artifact> {
        self.call0(&endpoints::COMPLETE_UPLOAD, &[id]).await
    }

    // ---- artifacts ----

    pub async fn search(&self, search: &Search) -> Result<ArtifactPage> {
        self.call(&endpoints::LIST_ARTIFACTS, &[], None, Some(search)).await
    }

    pub async fn artifact(&self, id: &str) -> Result<Artifact> {
        self.call0(&endpoints::GET_ARTIFACT, &[id]).await
    }

    /// `NAME@VERSION` or an id.
    pub async fn resolve(&self, reference: &str) -> Result<Artifact> {
        let Some((name, version)) = reference.split_once('@') else {
            return self.artifact(reference).await;
        };
        let search = Search { name: Some(name.to_owned()), version: Some(version.to_owned()), ..Search::default() };
        let page = self.search(&search).await?;
        page.items.into_iter().next().ok_or_else(|| {
            Error::Api(Box::new(Problem {
                status: 404,
                code: "not_found".into(),
                title: "Not Found".into(),
                detail: format!("{reference}: no such artifact"),
                retry_after: None,
                body: serde_json::Value::Null,
            }))
        })
    }

    pub async fn events(&self, id: &str) -> Result<Vec<LifecycleEvent>> {
        self.call0(&endpoints::ARTIFACT_EVENTS, &[id]).await
    }

    pub async fn delete_artifact(&self, id: &str) -> Result<()> {
        self.call0(&endpoints::DELETE_ARTIFACT, &[id]).await
    }

    pub async fn stats(&self) -> Result<Stats> {
        self.call0(&endpoints::STATS, &[]).await
    }

    pub async fn name_owners(&self, name: &str) -> Result<NameOwners> {
        self.call0(&endpoints::NAME_OWNERS, &[name]).await
    }

    pub async fn grant_name(&self, name: &str, username: &str) -> Result<NameOwners> {
        self.post(&endpoints::GRANT_NAME, &[name], &Grant { username: username.to_owned() }).await
    }

    pub async fn revoke_name(&self, name: &str, username: &str) -> Result<NameOwners> {
        self.call0(&endpoints::REVOKE_NAME, &[name, username]).await
    }

    // ---- download ----

    pub async fn download_link(&self, id: &str) -> Result<DownloadLink> {
        self.call0(&endpoints::DOWNLOAD_LINK, &[id]).await
    }

    // ---- scan ----

    pub async fn scan_results(&self, id: &str) -> Result<ScanResults> {
        self.call0(&endpoints::SCAN_RESULTS, &[id]).await
    }

    /// Asks for a new scan (approved, quarantined, or a retryable failure).
    pub async fn rescan(&self, id: &str) -> Result<()> {
        self.call0(&endpoints::RESCAN, &[id]).await
    }

    /// Releases a quarantined artifact with a justification (audited).
    pub async fn release(&self, id: &str, justification: &str) -> Result<Artifact> {
        self.post(&endpoints::RELEASE, &[id], &ReleaseRequest { justification: justification.to_owned() }).await
    }

    pub async fn policy(&self) -> Result<Policy> {
        self.call0(&endpoints::POLICY, &[]).await
    }

    pub async fn scanner(&self) -> Result<ScannerStatus> {
        self.call0(&endpoints::SCANNER, &[]).await
    }

    /// Exceptions in force (`all`: expired and revoked ones too).
    pub async fn exceptions(&self, all: bool) -> Result<Vec<Exception>> {
        self.call(&endpoints::LIST_EXCEPTIONS, &[], None, Some(&[("all", all)])).await
    }

    pub async fn create_exception(&self, exception: &NewException) -> Result<Exception> {
        self.post(&endpoints::CREATE_EXCEPTION, &[], exception).await
    }

    pub async fn revoke_exception(&self, id: &str) -> Result<()> {
        self.call0(&endpoints::REVOKE_EXCEPTION, &[id]).await
    }

    // ---- sign ----

    pub async fn signature(&self, id: &str) -> Result<ArtifactSignature> {
        self.call0(&endpoints::SIGNATURE, &[id]).await
    }

    pub async fn attach_signature(&self, id: &str, signature: &NewPublisherSignature) -> Result<PublisherSignature> {
        self.post(&endpoints::ATTACH_SIGNATURE, &[id], signature).await
    }

    pub async fn signatures(&self, id: &str) -> Result<Vec<PublisherSignature>> {
        self.call0(&endpoints::LIST_SIGNATURES, &[id]).await
    }

    pub async fn resign(&self) -> Result<Resigned> {
        self.call0(&endpoints::RESIGN, &[]).await
    }

    // ---- audit ----

    pub async fn audit_search(&self, query: &AuditQuery) -> Result<AuditPage> {
        self.call(&endpoints::SEARCH_AUDIT, &[], None, Some(query)).await
    }

    /// The whole matching log as NDJSON (oldest first), written to `out`.
    pub async fn audit_export(&self, query: &AuditQuery, out: &std::path::Path) -> Result<u64> {
        let request = self.request(&endpoints::SEARCH_AUDIT, &[]).query(query).query(&[("format", "ndjson")]);
        let response = self.send(endpoints::SEARCH_AUDIT.operation_id, request).await?;
        transfer::stream_to_file(response, out).await
    }

    pub async fn audit_verify(&self) -> Result<Verification> {
        self.call0(&endpoints::VERIFY_AUDIT, &[]).await
    }

    pub async fn audit_checkpoints(&self) -> Result<Checkpoints> {
        self.call0(&endpoints::AUDIT_CHECKPOINTS, &[]).await
    }
}

/// Turns an error status into [`Error::Api`] with the decoded problem.
pub async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Ok(response);
    }
    Err(Error::Api(Box::new(problem_of(response).await)))
}

/// The problem document of an error response.
pub async fn problem_of(response: reqwest::Response) -> Problem {
    let status = response.status().as_u16();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let body = response.bytes().await.unwrap_or_default();
    Problem::from_body(status, retry_after, &body)
}
