//! Issue 3: identity and access — RBAC on every route, JWT attacks, refresh rotation,
//! brute force, the audit chain, rate limits and allowlists.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{eventually, Arca, Backend, ADMIN_PASSWORD, USER_PASSWORD};

const PRINCIPALS: [&str; 6] = ["anonymous", "consumer", "publisher", "auditor", "admin", "narrow-token"];

/// Who may call each route: the test's own table, independent of the server's.
fn expected() -> HashMap<&'static str, &'static [&'static str]> {
    const ALL: &[&str] = &PRINCIPALS;
    const SIGNED_IN: &[&str] = &["consumer", "publisher", "auditor", "admin", "narrow-token"];
    const USERS: &[&str] = &["consumer", "publisher", "auditor", "admin"];
    const AUDIT: &[&str] = &["auditor", "admin"];
    const ADMIN: &[&str] = &["admin"];
    const READ: &[&str] = &["consumer", "publisher", "auditor", "admin", "narrow-token"];
    const WRITE: &[&str] = &["publisher", "admin"];
    const DOWNLOAD: &[&str] = &["consumer", "publisher", "admin"];
    const SCAN_RESULTS: &[&str] = &["publisher", "auditor", "admin"];
    HashMap::from([
        ("GET /api/health", ALL),
        ("GET /health/liveness", ALL),
        ("GET /health/readiness", ALL),
        ("GET /api/metrics", AUDIT),
        ("GET /api/openapi.json", ALL),
        ("POST /api/auth/login", ALL),
        ("POST /api/auth/refresh", ALL),
        ("POST /api/auth/logout", SIGNED_IN),
        ("GET /api/auth/me", SIGNED_IN),
        ("GET /api/auth/jwks", ALL),
        ("POST /api/tokens", USERS),
        ("GET /api/tokens", USERS),
        ("DELETE /api/tokens/{id}", USERS),
        ("GET /api/users", ADMIN),
        ("POST /api/users", ADMIN),
        ("PUT /api/users/{id}", ADMIN),
        ("GET /api/roles", SIGNED_IN),
        ("GET /api/audit-logs", AUDIT),
        ("GET /api/audit-logs/verify", AUDIT),
        ("GET /api/events/dead-letters", AUDIT),
        ("POST /api/artifacts", WRITE),
        ("POST /api/artifacts/{id}/complete", WRITE),
        // The signed token in the URL is the credential.
        ("PUT /api/uploads/{token}", ALL),
        ("GET /api/artifacts", READ),
        ("GET /api/artifacts/{id}", READ),
        ("DELETE /api/artifacts/{id}", WRITE),
        ("GET /api/artifacts/{id}/download", DOWNLOAD),
        ("POST /api/artifacts/{id}/upload", WRITE),
        ("GET /api/artifacts/{id}/parts", WRITE),
        ("POST /api/artifacts/{id}/parts", WRITE),
        ("GET /api/artifacts/{id}/scan-results", SCAN_RESULTS),
        // Readers reach it: retrying one's own failed artifact; approved/quarantined need manage.
        ("POST /api/artifacts/{id}/rescan", READ),
        ("POST /api/artifacts/{id}/release", ADMIN),
        ("GET /api/policy", SIGNED_IN),
        ("GET /api/artifacts/{id}/signature", READ),
        ("POST /api/admin/resign", ADMIN),
        ("POST /api/artifacts/{id}/signatures", WRITE),
        ("GET /api/artifacts/{id}/signatures", READ),
        ("GET /api/exceptions", ADMIN),
        ("POST /api/exceptions", ADMIN),
        ("DELETE /api/exceptions/{id}", ADMIN),
        ("GET /api/audit-logs/checkpoints", AUDIT),
        ("GET /api/artifacts/{id}/events", READ),
        ("GET /api/stats", READ),
        ("GET /api/scanner", SIGNED_IN),
        ("GET /api/names/{name}/owners", READ),
        ("POST /api/names/{name}/owners", ADMIN),
        ("DELETE /api/names/{name}/owners/{username}", ADMIN),
        ("POST /api/artifacts/{id}/download-link", DOWNLOAD),
        // The signed, single-use token in the URL is the credential.
        ("GET /api/download-links/{token}", ALL),
        ("POST /api/audit-logs/export-link", AUDIT),
        // The signed, single-use token in the URL is the credential.
        ("GET /api/audit-logs/export/{token}", ALL),
    ])
}

fn is_denied(status: u16, body: &Value) -> bool {
    matches!((status, body["code"].as_str()), (401, Some("invalid_token")) | (403, Some("permission_denied")))
}

/// Every route × every kind of caller; a route without a row in `expected()` fails.
async fn route_role_matrix(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let mut tokens: HashMap<&str, Option<String>> =
        HashMap::from([("anonymous", None), ("admin", Some(admin.clone()))]);
    for role in ["consumer", "publisher", "auditor"] {
        arca.create_user(&admin, role, &[role]).await;
        tokens.insert(role, Some(arca.login(role, USER_PASSWORD).await));
    }
    let publisher = tokens["publisher"].clone().unwrap();
    let created = arca
        .call(
            Method::POST,
            "/api/tokens",
            Some(&publisher),
            Some(json!({"name": "ci", "scopes": ["artifacts_read"], "expires_in_days": 1})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let narrow: Value = created.json().await.unwrap();
    tokens.insert("narrow-token", Some(narrow["token"].as_str().unwrap().to_owned()));

    let expected = expected();
    let mut routes: Vec<(String, String)> = shared::web::function::all_functions::<shared::web::state::ServeState>()
        .iter()
        .flat_map(|f| {
            f.specs().filter(|s| !s.internal).map(|s| (s.method.to_string(), s.path.clone())).collect::<Vec<_>>()
        })
        .collect();
    // Logging out ends the caller's session: do it last.
    routes.sort_by_key(|(_, path)| path == "/api/auth/logout");
    let mut failures = Vec::new();
    for (method, path) in &routes {
        let key = format!("{method} {path}");
        let allowed =
            expected.get(key.as_str()).unwrap_or_else(|| panic!("route {key} has no row in the test's table"));
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{token}", "not-a-token")
            .replace("{name}", "no-such-name")
            .replace("{username}", "nobody");
        for principal in PRINCIPALS {
            let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({}));
            let response = arca.call(method.parse().unwrap(), &concrete, tokens[principal].as_deref(), body).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let json: Value = serde_json::from_str(&text).unwrap_or_default();
            let denied = is_denied(status, &json);
            if denied == allowed.contains(&principal) {
                failures.push(format!("{key} as {principal}: status {status} {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "RBAC mismatches:\n{}", failures.join("\n"));
    assert_eq!(routes.len(), expected.len(), "the test's table lists routes the server does not serve");
}
both_backends!(route_role_matrix);

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A token signed with the server's own key but with chosen claims.
fn forge(arca: &Arca, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(arca.data_dir.join("keys/jwt-es256.pem")).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// Every classic JWT attack is refused with 401.
async fn jwt_attacks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let me: Value = arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await.json().await.unwrap();
    let jwks: Value = arca.get("/api/auth/jwks").await.json().await.unwrap();
    let jwk = &jwks["keys"][0];
    let kid = jwk["kid"].as_str().unwrap();
    let parts = segments(&admin);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "arca");
    assert_eq!(claims["sub"], me["id"]);
    assert!(claims["jti"].is_string() && claims["exp"].is_number() && claims["iat"].is_number());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    // The valid forgery control: the server's key with the same claims is accepted.
    let control = forge(&arca, kid, &claims);
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&control), None).await.status(), 200);

    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        c
    };
    let mut attacks: Vec<(&str, String)> = Vec::new();
    let alg_none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    attacks.push(("alg none", alg_none));
    // HS256 keyed with the public key (the algorithm-confusion attack).
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    let mut spki = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    spki.push(4);
    spki.extend(x);
    spki.extend(y);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.to_owned());
    attacks.push((
        "HS256 with public key",
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(pem.as_bytes())).unwrap(),
    ));
    attacks.push((
        "expired",
        forge(
            &arca,
            kid,
            &with(&|c| {
                c["exp"] = json!(now() - 120);
                c["iat"] = json!(now() - 1000);
                c["nbf"] = json!(now() - 1000);
            }),
        ),
    ));
    attacks.push((
        "not yet valid",
        forge(
            &arca,
            kid,
            &with(&|c| {
                c["nbf"] = json!(now() + 600);
                c["exp"] = json!(now() + 1200);
            }),
        ),
    ));
    attacks.push(("wrong aud", forge(&arca, kid, &with(&|c| c["aud"] = json!("someone-else")))));
    attacks.push(("wrong iss", forge(&arca, kid, &with(&|c| c["iss"] = json!("evil")))));
    let tampered_claims = with(&|c| c["sub"] = json!("00000000-0000-0000-0000-000000000000"));
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(tampered_claims.to_string()), parts[2]);
    attacks.push(("tampered payload", tampered));
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("unknown-kid".to_owned());
    let key = EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes()).unwrap();
    attacks.push(("unknown kid", jsonwebtoken::encode(&h, &claims, &key).unwrap()));
    attacks.push(("server key, unknown kid", forge(&arca, "unknown-kid", &claims)));

    // A disabled user's token.
    arca.create_user(&admin, "dora", &["consumer"]).await;
    let dora = arca.login("dora", USER_PASSWORD).await;
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&dora), None).await.status(), 200);
    let users: Value = arca.call(Method::GET, "/api/users", Some(&admin), None).await.json().await.unwrap();
    let dora_id =
        users.as_array().unwrap().iter().find(|u| u["username"] == "dora").unwrap()["id"].as_str().unwrap().to_owned();
    let disable =
        arca.call(Method::PUT, &format!("/api/users/{dora_id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(disable.status(), 200);
    attacks.push(("disabled user", dora));
    // A token after logout.
    let session = arca.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(arca.call(Method::POST, "/api/auth/logout", Some(&session), None).await.status(), 204);
    attacks.push(("after logout", session));

    for (name, token) in attacks {
        let response = arca.call(Method::GET, "/api/auth/me", Some(&token), None).await;
        assert_eq!(response.status(), 401, "{name} was not rejected");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_token", "{name}");
    }
}
both_backends!(jwt_attacks);

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A role change takes effect on the existing token at once.
async fn role_change_is_immediate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let id = arca.create_user(&admin, "carol", &["consumer"]).await;
    let carol = arca.login("carol", USER_PASSWORD).await;
    assert_eq!(arca.call(Method::GET, "/api/users", Some(&carol), None).await.status(), 403);
    let promote =
        arca.call(Method::PUT, &format!("/api/users/{id}"), Some(&admin), Some(json!({"roles": ["admin"]}))).await;
    assert_eq!(promote.status(), 200);
    assert_eq!(arca.call(Method::GET, "/api/users", Some(&carol), None).await.status(), 200);
    // The last enabled admin cannot be demoted: carol is an admin now, so admin can go once.
    let me: Value = arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await.json().await.unwrap();
    let admin_id = me["id"].as_str().unwrap();
    let demote_carol =
        arca.call(Method::PUT, &format!("/api/users/{id}"), Some(&admin), Some(json!({"roles": ["consumer"]}))).await;
    assert_eq!(demote_carol.status(), 200);
    let last =
        arca.call(Method::PUT, &format!("/api/users/{admin_id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(last.status(), 409);
    let body: Value = last.json().await.unwrap();
    assert_eq!(body["code"], "last_admin");
    // A password change revokes the user's sessions.
    let refresh = arca.login_body("carol", USER_PASSWORD).await["refresh_token"].as_str().unwrap().to_owned();
    let change = arca
        .call(
            Method::PUT,
            &format!("/api/users/{id}"),
            Some(&admin),
            Some(json!({"password": "another-long-password"})),
        )
        .await;
    assert_eq!(change.status(), 200);
    let reuse = arca.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&carol), None).await.status(), 401);
}
both_backends!(role_change_is_immediate);

async fn audit_actions(arca: &Arca, token: &str, action: &str) -> Vec<Value> {
    let path = format!("/api/audit-logs?action={action}");
    let page: Value = arca.call(Method::GET, &path, Some(token), None).await.json().await.unwrap();
    page["entries"].as_array().cloned().unwrap_or_default()
}

/// The `arca_refresh` cookie's value in a response.
fn refresh_cookie_value(response: &reqwest::Response) -> String {
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.strip_prefix("arca_refresh=").unwrap().split(';').next().unwrap().to_owned()
}

/// Reusing a rotated refresh token revokes the family; the audit log shows it. A browser
/// (a login that does not ask for it in the body) gets the refresh token only as the
/// HttpOnly cookie, out of page scripts' reach (security review Low); sign-in requests from
/// another site's page are refused.
async fn refresh_rotation(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let response = arca
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "admin", "password": ADMIN_PASSWORD})))
        .await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["arca_refresh=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"] {
        assert!(cookie.contains(attribute), "cookie lacks {attribute}: {cookie}");
    }
    let r1 = refresh_cookie_value(&response);
    let first: Value = response.json().await.unwrap();
    assert!(first["access_token"].is_string() && first.get("refresh_token").is_none(), "a browser's body: {first}");
    let cross_site = arca
        .client
        .post(arca.url("/api/auth/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "a login from another site's page");
    let refresh = |token: String| {
        let arca = &arca;
        async move { arca.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": token}))).await }
    };
    let second = refresh(r1.clone()).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&access2), None).await.status(), 200);
    // The cookie works as well as the body, and the new token goes back only as a cookie;
    // not for another site's page.
    let by_cookie = |site: &'static str| {
        let (arca, r2) = (&arca, r2.clone());
        async move {
            arca.client
                .post(arca.url("/api/auth/refresh"))
                .header("cookie", format!("arca_refresh={r2}"))
                .header("sec-fetch-site", site)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(by_cookie("cross-site").await.status(), 403);
    let by_cookie = by_cookie("same-origin").await;
    assert_eq!(by_cookie.status(), 200);
    let r3 = refresh_cookie_value(&by_cookie);
    let third: Value = by_cookie.json().await.unwrap();
    assert!(third.get("refresh_token").is_none(), "a cookie refresh's body: {third}");

    let reuse = refresh(r1).await;
    assert_eq!(reuse.status(), 401);
    let body: Value = reuse.json().await.unwrap();
    assert_eq!(body["code"], "refresh_token_reused");
    assert_eq!(refresh(r3).await.status(), 401, "the newest token of the family must be dead");
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&access2), None).await.status(), 401);

    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let entries = audit_actions(&arca, &admin, "auth.refresh_reuse").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["outcome"], "denied");
    assert_eq!(entries[0]["actor"], "admin");
}
both_backends!(refresh_rotation);

/// Twenty wrong passwords engage the lockout; unknown user and wrong password look alike.
async fn brute_force_lockout(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let attempt = |user: &'static str, password: &'static str| {
        let arca = &arca;
        async move {
            let r = arca
                .call(Method::POST, "/api/auth/login", None, Some(json!({"username": user, "password": password})))
                .await;
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (status, retry, r.text().await.unwrap())
        }
    };
    let unknown = attempt("nobody-here", "wrong-password-1").await;
    let wrong = attempt("admin", "wrong-password-1").await;
    assert_eq!(unknown.0, 401);
    assert_eq!((unknown.0, &unknown.2), (wrong.0, &wrong.2), "unknown user and wrong password must answer alike");

    let mut statuses = vec![wrong.0];
    for _ in 0..19 {
        let (status, retry, body) = attempt("admin", "wrong-password-1").await;
        if status == 429 {
            assert!(retry.is_some(), "429 without Retry-After");
            assert!(body.contains("locked_out"), "{body}");
        }
        statuses.push(status);
    }
    assert!(statuses.iter().take(5).all(|s| *s == 401), "{statuses:?}");
    assert!(statuses.iter().skip(5).all(|s| *s == 429), "lockout did not engage: {statuses:?}");
    let (status, _, body) = attempt("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "a correct password during lockout must be refused: {body}");
}
both_backends!(brute_force_lockout);

/// An API token and a refresh token past their expiry are refused (until then they work):
/// the expiry comparisons in core::tokens and core::sessions.
async fn expired_tokens_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let db = crate::helpers::TestDb::of(&arca).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let created = arca
        .call(
            Method::POST,
            "/api/tokens",
            Some(&admin),
            Some(json!({"name": "short-lived", "scopes": ["artifacts_read"], "expires_in_days": 1})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let token = created.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(arca.call(Method::GET, "/api/artifacts", Some(&token), None).await.status(), 200);
    let refresh = arca.login_body("admin", ADMIN_PASSWORD).await["refresh_token"].as_str().unwrap().to_owned();

    // Both expire a second ago.
    let past = now() * 1000 - 1000;
    db.execute(&format!("UPDATE api_tokens SET expires_at = {past}")).await;
    db.execute(&format!("UPDATE refresh_tokens SET expires_at = {past}")).await;
    let r = arca.call(Method::GET, "/api/artifacts", Some(&token), None).await;
    assert_eq!(r.status(), 401, "an expired API token: {}", r.text().await.unwrap());
    let r = arca.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_refresh_token");
}
both_backends!(expired_tokens_are_refused);

/// Wrong passwords lock an account only for the address they came from (anyone could
/// otherwise lock the admin out everywhere, security review Low); an account guessed at
/// from many addresses still locks everywhere (the backstop, ×10 the threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_per_address_with_an_account_backstop() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .env("ARCA_LOCKOUT_THRESHOLD", "2")
        .start()
        .await;
    let attempt = |from: String, password: &'static str| {
        let arca = &arca;
        async move {
            let r = arca
                .client
                .post(arca.url("/api/auth/login"))
                .header("x-forwarded-for", from)
                .json(&json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let attacker = "198.51.100.7".to_owned();
    for _ in 0..2 {
        assert_eq!(attempt(attacker.clone(), "wrong-password-1").await, 401);
    }
    assert_eq!(attempt(attacker.clone(), ADMIN_PASSWORD).await, 429, "locked for the attacker's address");
    assert_eq!(attempt("203.0.113.5".to_owned(), ADMIN_PASSWORD).await, 200, "the admin elsewhere is not locked out");

    // One address guessing at many accounts: locked for all of them after 4 × the threshold.
    let sprayer = "198.51.100.99".to_owned();
    for i in 0..8 {
        let r = arca
            .client
            .post(arca.url("/api/auth/login"))
            .header("x-forwarded-for", &sprayer)
            .json(&json!({"username": format!("someone-{i}"), "password": "wrong-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    assert_eq!(attempt(sprayer, ADMIN_PASSWORD).await, 429, "the address is locked for every account");

    // 2 × 10 failures from ten addresses lock the account for everyone.
    for i in 1..=10 {
        for _ in 0..2 {
            assert_eq!(attempt(format!("192.0.2.{i}"), "wrong-password-1").await, 401);
        }
    }
    assert_eq!(attempt("203.0.113.6".to_owned(), ADMIN_PASSWORD).await, 429, "the backstop locks everywhere");
}

/// Changing one row breaks verification at that entry; PostgreSQL refuses UPDATE/DELETE.
async fn audit_chain_tamper(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let builder = Arca::builder(dir.path(), backend).await;
    let database_url = builder.database_url();
    let arca = builder.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..5 {
        arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    }
    let verify = || async {
        let r = arca.call(Method::GET, "/api/audit-logs/verify", Some(&admin), None).await;
        r.json::<Value>().await.unwrap()
    };
    assert!(eventually(Duration::from_secs(10), || async { verify().await["entries"].as_i64().unwrap() >= 6 }).await);
    let report = verify().await;
    assert_eq!(report["valid"], true, "{report}");
    // Each request is in the log with actor, IP and request id.
    let entries = audit_actions(&arca, &admin, "GET%20/api/auth/me").await;
    assert!(entries.len() >= 5);
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["client_ip"], "127.0.0.1");
    assert_eq!(entries[0]["status"], 200);
    assert!(!entries[0]["request_id"].as_str().unwrap().is_empty());

    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display()))
                .await
                .unwrap();
            let err = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&pool).await;
            assert!(err.is_err(), "UPDATE on audit_log must fail");
            sqlx::query("DROP TRIGGER audit_log_no_update").execute(&pool).await.unwrap();
            sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&pool).await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&database_url.unwrap()).await.unwrap();
            for sql in ["UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", "DELETE FROM audit_log WHERE seq = 3"] {
                let err = sqlx::query(sql).execute(&pool).await.expect_err("audit rows must be immutable");
                assert!(err.to_string().contains("append-only"), "{err}");
            }
            // A database superuser can still bypass triggers; the chain catches it.
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("SET session_replication_role = replica").execute(&mut *conn).await.unwrap();
            sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&mut *conn).await.unwrap();
        }
    }
    let report = verify().await;
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(report["first_invalid"]["seq"], 3, "{report}");
}
both_backends!(audit_chain_tamper);

/// The NDJSON export streams entries oldest first; filters and cursors work.
async fn audit_search_and_export(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..4 {
        arca.get("/api/health").await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            audit_actions(&arca, &admin, "GET%20/api/health").await.len() == 4
        })
        .await
    );
    // Denials beside the successes, so that the outcome filter has something to leave out.
    for _ in 0..3 {
        assert_eq!(arca.get("/api/users").await.status(), 401);
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            arca.call(Method::GET, "/api/audit-logs?format=ndjson&outcome=denied", Some(&admin), None)
                .await
                .text()
                .await
                .unwrap()
                .lines()
                .count()
                >= 3
        })
        .await
    );
    let seqs_of = |page: &Value| -> Vec<i64> {
        page["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect()
    };
    // Walk the whole log two entries at a time: pages are disjoint and strictly descending.
    let mut seen: Vec<i64> = Vec::new();
    let mut path = "/api/audit-logs?limit=2".to_owned();
    loop {
        let page: Value = arca.call(Method::GET, &path, Some(&admin), None).await.json().await.unwrap();
        let seqs = seqs_of(&page);
        assert!(seqs.len() <= 2, "{page}");
        for seq in &seqs {
            assert!(seen.last().is_none_or(|last| seq < last), "entry {seq} repeated or out of order after {seen:?}");
            seen.push(*seq);
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/audit-logs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert!(seen.len() >= 8, "{seen:?}");
    assert_eq!(*seen.last().unwrap(), 1, "the walk did not reach the first entry: {seen:?}");
    // The outcome filter, on the export and on pages, with both kinds present.
    for outcome in ["success", "denied"] {
        let export = arca
            .call(Method::GET, &format!("/api/audit-logs?format=ndjson&outcome={outcome}"), Some(&admin), None)
            .await;
        assert_eq!(export.headers()["content-type"], "application/x-ndjson");
        let entries: Vec<Value> =
            export.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.len() >= 3 && seqs.windows(2).all(|w| w[0] < w[1]), "{outcome}: {seqs:?}");
        assert!(entries.iter().all(|e| e["outcome"] == outcome), "{outcome}: {entries:?}");
        let page: Value = arca
            .call(Method::GET, &format!("/api/audit-logs?outcome={outcome}&limit=1000"), Some(&admin), None)
            .await
            .json()
            .await
            .unwrap();
        assert!(page["entries"].as_array().unwrap().iter().all(|e| e["outcome"] == outcome), "{outcome}");
        // The same entries, up to the export's newest: requests made since (the export's
        // own, audited as a success) may have been written in between.
        let newest = *seqs.last().unwrap();
        let mut paged: Vec<i64> = seqs_of(&page).into_iter().filter(|s| *s <= newest).collect();
        paged.reverse();
        assert_eq!(paged, seqs, "{outcome}: the page and the export disagree");
    }
    let denied = arca.call(Method::GET, "/api/audit-logs?format=ndjson&outcome=denied", Some(&admin), None).await;
    assert!(denied.text().await.unwrap().contains("GET /api/users"), "the 401s are the denials");
    let bad = arca.call(Method::GET, "/api/audit-logs?since=yesterday", Some(&admin), None).await;
    assert_eq!(bad.status(), 400);
}
both_backends!(audit_search_and_export);

async fn statuses(arca: &Arca, path: &str, forwarded: &[&str]) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for xff in forwarded {
        let mut request = arca.client.get(arca.url(path));
        if !xff.is_empty() {
            request = request.header("x-forwarded-for", *xff);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = json!({
            "limit": r.headers().get("ratelimit-limit").map(|v| v.to_str().unwrap().to_owned()),
            "retry": r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
            "code": r.json::<Value>().await.unwrap_or_default()["code"],
        });
        out.push((status, headers));
    }
    out
}

/// Rate limits per IP (spoofed X-Forwarded-For ignored; honoured from a trusted proxy) and
/// allowlists (global, IPv4 and IPv6, per role).
async fn rate_limits_and_allowlists(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<String> = (1..=20).map(|i| format!("203.0.113.{i}")).collect();
    let xff: Vec<&str> = ips.iter().map(String::as_str).collect();

    // Untrusted peer: the spoofed header is ignored, so all 20 count against 127.0.0.1.
    let arca = Arca::builder(&dir.path().join("a"), backend).await.env("ARCA_RATE_LIMIT", "15").start().await;
    // Limits count per wall-clock minute: keep the 20 requests inside one window.
    let second = now() % 60;
    if second >= 55 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    let results = statuses(&arca, "/api/health", &xff).await;
    let limited: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(limited.len(), 5, "{results:?}");
    assert_eq!(limited[0].1["limit"], "15");
    assert!(limited[0].1["retry"].is_string());
    assert_eq!(limited[0].1["code"], "rate_limited");
    drop(arca);

    // Trusted proxy: each forwarded client has its own budget; the allowlist sees them.
    let arca = Arca::builder(&dir.path().join("b"), backend)
        .await
        .env("ARCA_RATE_LIMIT", "15")
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1/32")
        .start()
        .await;
    let results = statuses(&arca, "/api/health", &xff).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    drop(arca);

    let arca = Arca::builder(&dir.path().join("c"), backend)
        .await
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .env("ARCA_ALLOWLIST", "10.20.0.0/16,2001:db8::/32")
        .env("ARCA_ALLOWLIST_ADMIN", "10.20.9.0/24")
        .start()
        .await;
    let results =
        statuses(&arca, "/api/health", &["10.20.1.1", "192.0.2.1", "2001:db8::7", "", "1.2.3.4, 10.20.1.1"]).await;
    let codes: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, vec![200, 403, 200, 403, 200], "{results:?}");
    assert_eq!(results[1].1["code"], "ip_not_allowed");
    // Per role: admin only from 10.20.9.0/24.
    let login = |xff: &'static str| {
        let arca = &arca;
        async move {
            let r = arca
                .client
                .post(arca.url("/api/auth/login"))
                .header("x-forwarded-for", xff)
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
        }
    };
    let token = login("10.20.1.1").await;
    let me = |xff: &'static str, token: String| {
        let arca = &arca;
        async move {
            let r = arca
                .client
                .get(arca.url("/api/auth/me"))
                .bearer_auth(token)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap()["code"].clone())
        }
    };
    assert_eq!(me("10.20.1.1", token.clone()).await, (403, json!("ip_not_allowed_for_role")));
    assert_eq!(me("10.20.9.5", token).await.0, 200);
    drop(arca);

    // Untrusted peer with a spoofed allowed address: still refused.
    let arca = Arca::builder(&dir.path().join("d"), backend).await.env("ARCA_ALLOWLIST", "10.20.0.0/16").start().await;
    let results = statuses(&arca, "/api/health", &["10.20.1.1"]).await;
    assert_eq!(results[0].0, 403, "{results:?}");
    drop(arca);

    // A hop that does not parse never makes Arca fall back to the proxy's own address
    // (hardening finding 1): the header is walked from the right, and garbage is the client.
    let arca = Arca::builder(&dir.path().join("e"), backend)
        .await
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .env("ARCA_ALLOWLIST", "127.0.0.0/8")
        .env("ARCA_ALLOWLIST_ADMIN", "127.0.0.1/32")
        .start()
        .await;
    let forged =
        ["203.0.113.9", "garbage, 203.0.113.9", "203.0.113.9, garbage", "unknown", "1.2.3.4:99", "x", "127.0.0.9"];
    let results = statuses(&arca, "/api/health", &forged).await;
    let codes: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, vec![403, 403, 403, 403, 403, 403, 200], "{results:?}");
    // The admin may come only from the proxy host itself; garbage in front of another
    // loopback address does not turn the caller into the proxy.
    let token = arca.login("admin", ADMIN_PASSWORD).await;
    for (xff, expected) in [("garbage, 127.0.0.9", 403), ("127.0.0.9", 403), ("unknown", 403), ("", 200)] {
        let mut request = arca.client.get(arca.url("/api/auth/me")).bearer_auth(&token);
        if !xff.is_empty() {
            request = request.header("x-forwarded-for", xff);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "X-Forwarded-For: {xff}");
    }
}
both_backends!(rate_limits_and_allowlists);

/// API tokens: shown once, hashed, scoped, immediately revocable, last use tracked.
async fn api_tokens(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "ci-bot", &["consumer"]).await;
    let bot = arca.login("ci-bot", USER_PASSWORD).await;
    let create = |body: Value| {
        let (arca, bot) = (&arca, bot.clone());
        async move { arca.call(Method::POST, "/api/tokens", Some(&bot), Some(body)).await }
    };
    let beyond = create(json!({"name": "x", "scopes": ["users_manage"], "expires_in_days": 1})).await;
    assert_eq!(beyond.status(), 403);
    let no_expiry = create(json!({"name": "x", "scopes": ["artifacts_read"]})).await;
    assert_eq!(no_expiry.status(), 422);
    let too_long = create(json!({"name": "x", "scopes": ["artifacts_read"], "expires_in_days": 10000})).await;
    assert_eq!(too_long.status(), 400);
    let created = create(json!({"name": "pipeline", "scopes": ["artifacts_read"], "expires_in_days": 30})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let value = created["token"].as_str().unwrap().to_owned();
    assert!(value.starts_with("arca_") && value.len() >= 5 + 43, "{value}");
    let me: Value = arca.call(Method::GET, "/api/auth/me", Some(&value), None).await.json().await.unwrap();
    assert_eq!(me["username"], "ci-bot");
    assert_eq!(me["permissions"], json!(["artifacts_read"]));
    let listed = arca.call(Method::GET, "/api/tokens", Some(&bot), None).await.text().await.unwrap();
    assert!(!listed.contains(&value), "token value listed");
    // At rest: only the token's SHA-256 is stored, never the token or its secret part.
    let db = crate::helpers::TestDb::of(&arca).await;
    let id = created["id"].as_str().unwrap();
    let stored = db
        .strings(&format!(
            "SELECT id || ' ' || user_id || ' ' || name || ' ' || token_hash || ' ' || scopes FROM api_tokens WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(stored.len(), 1);
    let secret = value.trim_start_matches("arca_");
    assert!(!stored[0].contains(secret) && !stored[0].contains(&secret[..16]), "the token is stored: {}", stored[0]);
    let hash = db.strings(&format!("SELECT token_hash FROM api_tokens WHERE id = '{id}'")).await;
    assert_eq!(hash, [crate::artifacts::sha256_hex(value.as_bytes())], "token_hash is not the token's SHA-256");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(listed[0]["last_used_at"].is_number(), "{listed}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(arca.call(Method::DELETE, &format!("/api/tokens/{id}"), Some(&bot), None).await.status(), 204);
    assert_eq!(arca.call(Method::GET, "/api/auth/me", Some(&value), None).await.status(), 401);
    let entries = audit_actions(&arca, &admin, "tokens.revoke").await;
    assert_eq!(entries.len(), 1);
}
both_backends!(api_tokens);

/// Security headers on every response; no-store on authenticated ones.
#[tokio::test]
async fn security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for response in [arca.get("/api/nope").await, arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await] {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        assert!(h["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
    }
}

/// `arca login` stores the session 0600; later commands refresh it transparently.
#[tokio::test]
async fn cli_login_and_transparent_refresh() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let config = dir.path().join("config");
    let cli = |args: &[&str]| {
        std::process::Command::new(crate::helpers::bin("arca"))
            .args(args)
            .env("XDG_CONFIG_HOME", &config)
            .env("ARCA_PASSWORD", ADMIN_PASSWORD)
            .env_remove("ARCA_TOKEN")
            .output()
            .unwrap()
    };
    let cert = arca.data_dir.join("tls/cert.pem");
    let out = cli(&["login", "--server", &arca.url, "--username", "admin", "--ca-cert", cert.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let creds = config.join("arca/credentials.json");
    assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o600);
    let stored = |p: &std::path::Path| {
        serde_json::from_str::<Value>(&std::fs::read_to_string(p).unwrap()).unwrap()["refresh_token"].clone()
    };
    let before = stored(&creds);
    // A still-valid access token is reused (no refresh); once it has expired, the next
    // command refreshes transparently and the refresh token rotates.
    let out = cli(&["whoami"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stored(&creds), before, "a valid access token needs no refresh");
    let mut session: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    session["access_expires_at"] = Value::from(0);
    std::fs::write(&creds, session.to_string()).unwrap();
    for _ in 0..2 {
        let out = cli(&["whoami"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("admin (admin)"));
    }
    assert_ne!(stored(&creds), before, "the refresh token must rotate");
    // A wrong password is reported in one line, without storing anything new.
    let out = std::process::Command::new(crate::helpers::bin("arca"))
        .args(["login", "--server", &arca.url, "--username", "admin", "--ca-cert", cert.to_str().unwrap()])
        .env("XDG_CONFIG_HOME", dir.path().join("other"))
        .env("ARCA_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_credentials"));
    assert!(!dir.path().join("other/arca/credentials.json").exists());
}

/// A tar.gz holding an AWS key pair (Trivy's secret scanner finds it).
fn leaky_archive() -> Vec<u8> {
    let file = "[default]\naws_access_key_id = AKIA2E0A8F3B244C9986\naws_secret_access_key = Lw0kz8D3qT9mY5vR1nX7pJ2cB6hF4gK0sA3eW8uZ\n";
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(file.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "app/config/credentials", file.as_bytes()).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// The scan-detail fields each view of an artifact carries (non-empty ones).
async fn detail_fields(arca: &Arca, token: &str, id: &str) -> (Vec<&'static str>, String) {
    let get = |path: String| {
        let token = token.to_owned();
        async move {
            let r = arca.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let one = get(format!("/api/artifacts/{id}")).await;
    let listed = get("/api/artifacts?q=leaky".to_owned()).await;
    let events = get(format!("/api/artifacts/{id}/events")).await;
    let stats = get("/api/stats".to_owned()).await;
    let item = &listed["items"][0];
    let recent = stats["recent_uploads"].as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap();
    assert_eq!(item["id"], id);
    let present = |v: &Value| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    };
    let mut fields = Vec::new();
    for (name, value) in [
        ("get.policy_reasons", &one["policy_reasons"]),
        ("get.status_reason", &one["status_reason"]),
        ("get.scan", &one["scan"]),
        ("search.policy_reasons", &item["policy_reasons"]),
        ("search.status_reason", &item["status_reason"]),
        ("search.severity", &item["severity"]),
        ("stats.policy_reasons", &recent["policy_reasons"]),
        ("stats.status_reason", &recent["status_reason"]),
    ] {
        if present(value) {
            fields.push(name);
        }
    }
    if events.as_array().unwrap().iter().any(|e| present(&e["reason"])) {
        fields.push("events.reason");
    }
    if stats["findings"].as_object().unwrap().values().any(|n| n.as_i64().unwrap_or(0) > 0) {
        fields.push("stats.findings");
    }
    (fields, format!("{one}{listed}{events}{stats}"))
}

/// Hardening finding 10, the route×role test extended to fields: a released artifact
/// (quarantined for a secret, then approved) shows its scan details (policy reasons, the
/// reason of its status, the scan summary, severity counts, reasons of its events) only to
/// callers who may read scan results; consumers and a token without that scope see none,
/// and never the secret's file.
async fn scan_detail_fields_by_role(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let mut tokens: Vec<(&str, String)> = vec![("admin", admin.clone())];
    for role in ["consumer", "publisher", "auditor"] {
        arca.create_user(&admin, role, &[role]).await;
        tokens.push((role, arca.login(role, USER_PASSWORD).await));
    }
    let created = arca
        .call(
            Method::POST,
            "/api/tokens",
            Some(&tokens[2].1),
            Some(json!({"name": "read-only", "scopes": ["artifacts_read"], "expires_in_days": 1})),
        )
        .await;
    assert_eq!(created.status(), 201);
    tokens.push(("narrow-token", created.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()));
    let (id, done) = crate::hardening::submit(&arca, &admin, "leaky", "leaky.tar.gz", leaky_archive()).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    let r = arca
        .call(
            Method::POST,
            &format!("/api/artifacts/{id}/release"),
            Some(&admin),
            Some(json!({"justification": "test credentials, revoked (SEC-7)"})),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    crate::hardening::wait_status(&arca, &admin, &id, "approved", Duration::from_secs(20)).await;

    let (all, _) = detail_fields(&arca, &admin, &id).await;
    for needed in ["get.policy_reasons", "get.scan", "search.severity", "events.reason", "stats.findings"] {
        assert!(all.contains(&needed), "the admin's view lacks {needed}: {all:?}");
    }
    let mut failures = Vec::new();
    for (principal, token) in &tokens {
        let (fields, text) = detail_fields(&arca, token, &id).await;
        let expected: &[&str] = match *principal {
            "consumer" | "narrow-token" => &[],
            _ => &all,
        };
        if fields != expected {
            failures.push(format!("{principal}: sees {fields:?}, expected {expected:?}"));
        }
        if expected.is_empty() {
            for leak in ["app/config/credentials", "aws-access-key-id", "AKIA", "\"rule\":", "SEC-7"] {
                if text.contains(leak) {
                    failures.push(format!("{principal}: the answers contain '{leak}'"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "scan details by role:\n{}", failures.join("\n"));
}
both_backends!(scan_detail_fields_by_role);

/// One request from `ip` (through the trusted proxy), with an optional bearer.
async fn from_ip(arca: &Arca, method: Method, path: &str, ip: &str, bearer: Option<&str>, body: Option<Value>) -> u16 {
    let mut request = arca.client.request(method, arca.url(path)).header("x-forwarded-for", ip);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Issue 16, point 14: one each of `permission_denied`, `invalid_token`, `ip_not_allowed`,
/// `rate_limited` and a failed login leaves a `denied` entry naming the actor (or none), the
/// client address, the route and the problem code, and no credential.
async fn denials_are_audited(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend)
        .await
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .env("ARCA_ALLOWLIST", "10.0.0.0/8,127.0.0.0/8")
        .env("ARCA_LOGIN_RATE_LIMIT", "3")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "reader", &["consumer"]).await;
    let reader = arca.login("reader", USER_PASSWORD).await;
    let bogus = "not-a-token-SECRET-b0gus-value";
    let (wrong_1, wrong_2) = ("wrong-pass-SECRET-one", "wrong-pass-SECRET-two");
    assert_eq!(from_ip(&arca, Method::GET, "/api/users", "10.0.0.2", Some(&reader), None).await, 403);
    assert_eq!(from_ip(&arca, Method::GET, "/api/auth/me", "10.0.0.3", Some(bogus), None).await, 401);
    assert_eq!(from_ip(&arca, Method::GET, "/api/health", "192.0.2.44", None, None).await, 403);
    let login = |password: &'static str| json!({"username": "reader", "password": password});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(from_ip(&arca, Method::POST, "/api/auth/login", "10.0.0.5", None, Some(login(wrong_1))).await);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(from_ip(&arca, Method::POST, "/api/auth/login", "10.0.0.6", None, Some(login(wrong_2))).await, 401);

    let cases = [
        ("10.0.0.2", "GET /api/users", "reader", "permission_denied"),
        ("10.0.0.3", "GET /api/auth/me", "", "invalid_token"),
        ("192.0.2.44", "GET /api/health", "", "ip_not_allowed"),
        ("10.0.0.5", "POST /api/auth/login", "", "rate_limited"),
        ("10.0.0.6", "POST /api/auth/login", "", "invalid_credentials"),
    ];
    let export = || async {
        arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap()
    };
    assert!(eventually(Duration::from_secs(10), || async { export().await.contains("192.0.2.44") }).await);
    let text = export().await;
    let entries: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut failures = Vec::new();
    for (ip, action, actor, code) in cases {
        let denied: Vec<&Value> = entries
            .iter()
            .filter(|e| e["client_ip"] == ip && e["action"] == action && e["outcome"] == "denied")
            .collect();
        let Some(entry) = denied.iter().find(|e| e.to_string().contains(code)) else {
            failures.push(format!("{code}: no denied entry from {ip} for {action} naming the code: {denied:?}"));
            continue;
        };
        let who = entry["actor"].as_str().unwrap();
        if !(who == actor || (actor.is_empty() && (who.is_empty() || who == "anonymous"))) {
            failures.push(format!("{code}: actor {who:?}, expected {actor:?}"));
        }
    }
    for secret in [bogus, wrong_1, wrong_2, USER_PASSWORD, ADMIN_PASSWORD, reader.as_str(), admin.as_str()] {
        if text.contains(secret) {
            failures.push(format!("the audit log holds a credential: {}…", &secret[..12]));
        }
    }
    assert!(failures.is_empty(), "denials in the audit log:\n{}", failures.join("\n"));
}
both_backends!(denials_are_audited);

/// Issue 16, point 15: the per-principal budget is the principal's wherever it comes from
/// (ten addresses share it), and another principal at one of those addresses keeps its own.
async fn per_principal_rate_limits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend)
        .await
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .env("ARCA_RATE_LIMIT", "10")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "alice", &["consumer"]).await;
    arca.create_user(&admin, "bob", &["consumer"]).await;
    let login = |user: &'static str, ip: &'static str| {
        let arca = &arca;
        async move {
            let r = arca
                .client
                .post(arca.url("/api/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": user, "password": USER_PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (alice, bob) = (login("alice", "198.51.100.200").await, login("bob", "198.51.100.201").await);
    let ips: Vec<String> = (1..=11).map(|i| format!("198.51.100.{i}")).collect();
    let mut statuses = Vec::new();
    for ip in &ips {
        statuses.push(from_ip(&arca, Method::GET, "/api/auth/me", ip, Some(&alice), None).await);
    }
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[10], 429, "one principal from eleven addresses got eleven requests through: {statuses:?}");
    // Bob, from an address Alice used, is not limited by Alice's budget.
    assert_eq!(from_ip(&arca, Method::GET, "/api/auth/me", &ips[0], Some(&bob), None).await, 200);
    let mut bob_statuses = Vec::new();
    for _ in 0..10 {
        bob_statuses.push(from_ip(&arca, Method::GET, "/api/auth/me", "198.51.100.99", Some(&bob), None).await);
    }
    assert_eq!(bob_statuses.iter().filter(|s| **s == 429).count(), 1, "bob has a budget of ten: {bob_statuses:?}");
}
both_backends!(per_principal_rate_limits);
