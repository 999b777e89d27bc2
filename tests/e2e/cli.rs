//! Issue 11 point 4 and issue 10 finding 20: the `arca` CLI made for CI. Sign-in without a
//! TTY (`--password-stdin`), `--output json` on every command, exit codes that tell a
//! refusal by policy from an error, shell completions, the trust anchor pinned at login (a
//! server presenting another certificate is refused), and file names from the server that
//! cannot leave the current directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::{bin, Arca, Backend, ADMIN_PASSWORD};

/// `arca` as a user with its own config dir, working in `dir`, with no password or token
/// in the environment and no terminal.
struct User {
    dir: PathBuf,
}

impl User {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self { dir: dir.to_owned() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("arca"));
        cmd.args(args)
            .current_dir(&self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env_remove("ARCA_PASSWORD")
            .env_remove("ARCA_TOKEN")
            .env_remove("ARCA_SERVER")
            .env_remove("ARCA_CA_CERT")
            .env_remove("ARCA_OUTPUT")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with `input` on stdin (a pipe: no TTY).
    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs with `--output json`; the exit code and the one JSON document on stdout.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("`arca {}` did not print JSON ({e}):\n{stdout}\nstderr: {}", all.join(" "), stderr(&out))
        });
        (out.status.code().unwrap_or(-1), value)
    }

    /// `--output json`, expecting success.
    fn ok(&self, args: &[&str]) -> Value {
        let (code, value) = self.json(args);
        assert_eq!(code, 0, "`arca {}`: {value}", args.join(" "));
        value
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tarball Arca quarantines (an AWS key pair).
fn leaky() -> Vec<u8> {
    let file = "[default]\naws_access_key_id = AKIA2E0A8F3B244C9986\n\
                aws_secret_access_key = Lw0kz8D3qT9mY5vR1nX7pJ2cB6hF4gK0sA3eW8uZ\n";
    tar_gz(&[("app/config/credentials", file.as_bytes())])
}

/// The SHA-256 fingerprint of a PEM certificate file, as `arca serve` prints it.
fn fingerprint_of(pem_file: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().rsplit('=').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_a_tty_json_everywhere_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let user = User::new(&dir.path().join("ci"));

    // Not signed in: not allowed (4), as JSON.
    let (code, anonymous) = user.json(&["ls"]);
    assert_eq!((code, anonymous["error"]["code"].as_str()), (4, Some("unauthorized")), "{anonymous}");

    // No TTY and no --password-stdin: a usage error that names the way out.
    let cert = arca.data_dir.join("tls/cert.pem");
    let cert = cert.to_str().unwrap();
    let out = user.run(&["login", "--server", &arca.url, "-u", "admin", "--ca-cert", cert]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--password-stdin"), "{}", stderr(&out));
    // A wrong password on stdin: not allowed (4), nothing stored.
    let signing_ca = arca.data_dir.join("signing/ca.pem");
    let args = [
        "--output",
        "json",
        "login",
        "--server",
        &arca.url,
        "-u",
        "admin",
        "--ca-cert",
        cert,
        "--signing-ca",
        signing_ca.to_str().unwrap(),
        "--password-stdin",
    ];
    let out = user.run_with_stdin(&args, "not-the-password\n");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], "invalid_credentials", "{error}");
    assert!(!user.dir.join("config/arca/credentials.json").exists());
    // The password on stdin, as `docker login --password-stdin`.
    let out = user.run_with_stdin(&args, &format!("{ADMIN_PASSWORD}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let login: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(login["username"], "admin");
    assert_eq!(login["pinned_certificate_sha256"], fingerprint_of(Path::new(cert)));

    assert_eq!(user.ok(&["whoami"])["username"], "admin");

    // push: approved (0), then one that ends quarantined (3), its artifact still on stdout.
    std::fs::write(user.dir.join("tool.tar.gz"), tar_gz(&[("bin/tool", b"#!/bin/sh\necho hi\n")])).unwrap();
    let pushed = user.ok(&["push", "tool.tar.gz", "--name", "tool", "--version", "1.0.0", "--label", "os=linux"]);
    assert_eq!(pushed["status"], "approved", "{pushed}");
    std::fs::write(user.dir.join("leaky.tar.gz"), leaky()).unwrap();
    let (code, leaky) = user.json(&["push", "leaky.tar.gz", "--name", "leaky", "--version", "1.0.0"]);
    assert_eq!((code, leaky["status"].as_str()), (3, Some("quarantined")), "{leaky}");

    let status = user.ok(&["status", "tool@1.0.0"]);
    assert_eq!(status["id"], pushed["id"]);
    let listed = user.ok(&["ls", "--label", "os=linux", "--status", "approved"]);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "tool");
    assert_eq!(user.ok(&["ls", "--name", "leaky", "--page", "1"])["items"][0]["status"], "quarantined");
    let shown = user.ok(&["show", "tool@1.0.0"]);
    assert_eq!(shown["artifact"]["status"], "approved");
    assert!(shown["artifact"]["scan"]["summary"].is_object(), "{shown}");
    assert_eq!(shown["signature"]["verified"], true, "{shown}");
    let shown = user.ok(&["show", "leaky@1.0.0"]);
    assert!(shown["artifact"]["status_reason"].as_str().is_some_and(|r| !r.is_empty()), "{shown}");
    assert!(shown["signature"].is_null());
    let results = user.ok(&["scan-results", "leaky@1.0.0"]);
    assert!(!results["findings"]["secrets"].as_array().unwrap().is_empty(), "{results}");

    // pull: approved (0); quarantined is a refusal by policy (3); unknown is not found (4).
    let pulled = user.ok(&["pull", "tool@1.0.0"]);
    assert_eq!(pulled["signature_verified"], true);
    assert!(user.dir.join("tool.tar.gz").exists());
    let (code, refused) = user.json(&["pull", "leaky@1.0.0", "-o", "leaky.out"]);
    assert_eq!(code, 3, "{refused}");
    assert!(!user.dir.join("leaky.out").exists());
    let (code, missing) = user.json(&["pull", "nothing@9.9.9"]);
    assert_eq!((code, missing["error"]["code"].as_str()), (4, Some("not_found")), "{missing}");
    // A usage error (2) and an unreachable server (1).
    assert_eq!(user.run(&["pull"]).status.code(), Some(2));
    assert_eq!(user.run(&["ls", "--status", "sideways"]).status.code(), Some(2));

    // rescan, release, exceptions.
    assert_eq!(user.ok(&["rescan", "tool@1.0.0"])["rescan"], "requested");
    let rescanned = user.ok(&["rescan", "tool@1.0.0", "--wait"]);
    assert_eq!(rescanned["status"], "approved", "{rescanned}");
    let added = user.ok(&["exceptions", "add", "--cve", "CVE-2022-32149", "--reason", "not reachable in our build"]);
    let exception = added["id"].as_str().unwrap().to_owned();
    let listed = user.ok(&["exceptions", "list"]);
    assert!(listed.as_array().unwrap().iter().any(|e| e["id"] == exception.as_str()), "{listed}");
    assert_eq!(user.ok(&["exceptions", "revoke", &exception])["revoked"], exception.as_str());
    let released = user.ok(&["release", "leaky@1.0.0", "--reason", "test credentials, rotated"]);
    assert!(["signing", "approved"].contains(&released["status"].as_str().unwrap()), "{released}");

    // Tokens: created once from the session, then CI uses ARCA_TOKEN with no stored session.
    let created = user.ok(&["token", "create", "--name", "ci", "--scope", "artifacts_read", "--expires", "7"]);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("arca_"), "{created}");
    let out = user.run(&["token", "create", "--name", "ci2", "--scope", "artifacts_read"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().lines().count(), 1, "text mode: the token alone");
    let tokens = user.ok(&["token", "list"]);
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    let ci = User::new(&dir.path().join("ci-runner"));
    let out = ci
        .command(&["--output", "json", "ls"])
        .env("ARCA_TOKEN", &token)
        .env("ARCA_SERVER", &arca.url)
        .env("ARCA_CA_CERT", cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(user.ok(&["token", "revoke", created["id"].as_str().unwrap()])["revoked"], created["id"]);

    // Offline verification and operator commands.
    let api = arca.api(Some(&arca.login("admin", ADMIN_PASSWORD).await));
    let signature = api.signature(pushed["id"].as_str().unwrap()).await.unwrap();
    std::fs::write(user.dir.join("sig.b64"), &signature.signature).unwrap();
    std::fs::write(user.dir.join("chain.pem"), &signature.certificate_chain).unwrap();
    let verified = user.ok(&["verify", "tool.tar.gz", "--signature", "sig.b64", "--chain", "chain.pem"]);
    assert_eq!(verified["result"], "valid");
    assert!(user.ok(&["admin", "resign"])["resigned"].as_u64().unwrap() >= 1);
    let log = user.dir.join("audit.ndjson");
    api.audit_export(&Default::default(), &log).await.unwrap();
    let checkpoints = api.audit_checkpoints().await.unwrap();
    std::fs::write(user.dir.join("checkpoints.json"), serde_json::to_vec(&checkpoints).unwrap()).unwrap();
    let (code, report) = user.json(&["audit", "verify", "--log", "audit.ndjson", "--checkpoints", "checkpoints.json"]);
    assert!(report["valid"].is_boolean() && report["entries"].as_i64().unwrap() > 0, "{report}");
    assert_eq!(code, if report["valid"] == true { 0 } else { 1 });
    // The public key as `jq -r .public_key` writes it (a blank line after the PEM).
    let document: Value = serde_json::from_slice(&std::fs::read(user.dir.join("checkpoints.json")).unwrap()).unwrap();
    std::fs::write(user.dir.join("key.pem"), format!("{}\n\n", document["public_key"].as_str().unwrap())).unwrap();
    let (pinned_code, pinned) = user.json(&[
        "audit",
        "verify",
        "--log",
        "audit.ndjson",
        "--checkpoints",
        "checkpoints.json",
        "--public-key",
        "key.pem",
    ]);
    assert_eq!((pinned_code, &pinned["valid"]), (code, &report["valid"]), "{pinned}");
    let trivy = crate::helpers::Trivy::from_env();
    let cache = user.dir.join("trivy-cache");
    let out = user
        .command(&["--output", "json", "admin", "trivy-db-import", trivy.db.to_str().unwrap(), "--cache-dir"])
        .arg(&cache)
        .env("ARCA_TRIVY", &trivy.bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(imported["updated_at"].as_str().is_some_and(|t| !t.is_empty()), "{imported}");
    assert!(cache.join("db/trivy.db").exists());
    let completion = user.ok(&["completion", "fish"]);
    assert!(completion["script"].as_str().unwrap().contains("complete -c arca"));

    // A server that is not there: an error (1), as JSON.
    drop(arca);
    let (code, down) = user.json(&["whoami"]);
    assert_eq!(code, 1, "{down}");
    assert!(down["error"]["message"].as_str().is_some(), "{down}");
}

#[test]
fn completion_scripts_parse() {
    let dir = tempfile::tempdir().unwrap();
    let user = User::new(dir.path());
    let out = user.run(&["completion", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = dir.path().join("arca.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    assert!(String::from_utf8_lossy(&out.stdout).contains("scan-results"));
    for shell in ["zsh", "fish"] {
        let out = user.run(&["completion", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    // `arca completion bash | head -1`: the reader closes the pipe before arca writes.
    let mut child =
        user.command(&["completion", "bash"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && !stderr(&out).contains("panicked"), "{:?}: {}", out.status, stderr(&out));
}

/// Issue 10 finding 20: the certificate pinned at login is the only one trusted later; a
/// login confirms what it pins; file names from the server stay in the current directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_anchor_is_pinned_and_file_names_are_sanitised() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(&dir.path().join("a"), Backend::Sqlite).await.start().await;
    let other = Arca::builder(&dir.path().join("b"), Backend::Sqlite).await.start().await;
    let user = User::new(&dir.path().join("user"));
    let cert = arca.data_dir.join("tls/cert.pem");
    let fingerprint = fingerprint_of(&cert);
    let password = format!("{ADMIN_PASSWORD}\n");

    // Without a TTY, a certificate that nobody confirmed is not trusted.
    let base = ["login", "--server", arca.url.as_str(), "-u", "admin", "--password-stdin"];
    let out = user.run_with_stdin(&base, &password);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&fingerprint), "the message shows the fingerprint to check: {}", stderr(&out));
    // The wrong fingerprint (the other server's) is refused; the right one is pinned.
    let wrong = fingerprint_of(&other.data_dir.join("tls/cert.pem"));
    let out = user.run_with_stdin(&[&base[..], &["--fingerprint", &wrong]].concat(), &password);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!user.dir.join("config/arca/credentials.json").exists());
    let lower = fingerprint.replace(':', "").to_lowercase();
    let out = user.run_with_stdin(&[&base[..], &["--fingerprint", &lower]].concat(), &password);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(user.dir.join("config/arca/credentials.json")).unwrap()).unwrap();
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squash(stored["ca_pem"].as_str().unwrap()), squash(&std::fs::read_to_string(&cert).unwrap()));

    // A hidden file name (`.profile`) is refused by the server (issue 21's filename policy);
    // the CLI's own sanitising of a server's name stays for a server that sends one anyway.
    let token = arca.login("admin", ADMIN_PASSWORD).await;
    let options = arca_client::PushOptions { filename: Some(".profile".into()), ..Default::default() };
    let source = arca_client::Source::bytes(tar_gz(&[("x", b"hello")]));
    let refused = arca.api(Some(&token)).push("dotted", "1.0.0", &source, &options).await.unwrap_err();
    assert!(format!("{refused:?}").contains("must not start with a dot"), "{refused:?}");
    let options = arca_client::PushOptions { filename: Some("profile".into()), ..Default::default() };
    let done = arca.api(Some(&token)).push("dotted", "1.0.0", &source, &options).await.unwrap();
    assert_eq!(done.status, arca_client::Status::Approved, "{done:?}");
    let pulled = user.ok(&["pull", "dotted@1.0.0"]);
    assert_eq!(Path::new(pulled["path"].as_str().unwrap()), user.dir.join("profile"));
    // No signing CA pinned at this login: the file is kept, its signature said NOT verified.
    assert_eq!(pulled["signature_verified"], false, "{pulled}");
    // -o writes where it says.
    std::fs::create_dir_all(user.dir.join("out")).unwrap();
    let pulled = user.ok(&["pull", "dotted@1.0.0", "-o", "out/dotted.tar.gz"]);
    assert_eq!(pulled["path"], "out/dotted.tar.gz");
    assert!(user.dir.join("out/dotted.tar.gz").exists());

    // Issue 21: Arca's signature counts only through the pinned signing CA, never through
    // the chain the server sends. Pinned to another CA (the other server's, a valid CA that
    // did not sign this), the served chain is internally consistent and still refused.
    let foreign_ca = other.data_dir.join("signing/ca.pem");
    let (code, refused) =
        user.json(&["pull", "dotted@1.0.0", "-o", "foreign.bin", "--signing-ca", foreign_ca.to_str().unwrap()]);
    assert_eq!(code, 1, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("pinned signing CA"), "{refused}");
    assert!(!user.dir.join("foreign.bin").exists(), "a file that does not verify is deleted");
    // The same, pinned at login; then Arca's own signing CA verifies.
    let login = [&base[..], &["--fingerprint", &lower, "--signing-ca", foreign_ca.to_str().unwrap()]].concat();
    assert!(user.run_with_stdin(&login, &password).status.success());
    let (code, refused) = user.json(&["pull", "dotted@1.0.0", "-o", "foreign.bin"]);
    assert_eq!(code, 1, "{refused}");
    let own_ca = arca.data_dir.join("signing/ca.pem");
    let pulled = user.ok(&["pull", "dotted@1.0.0", "-o", "own.bin", "--signing-ca", own_ca.to_str().unwrap()]);
    assert_eq!(pulled["signature_verified"], true, "{pulled}");

    // The same address now presents another certificate (here: another server, as a
    // man in the middle would): every command refuses it, nothing is downloaded.
    let path = user.dir.join("config/arca/credentials.json");
    let mut creds: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    creds["server"] = Value::String(other.url.clone());
    std::fs::write(&path, serde_json::to_vec(&creds).unwrap()).unwrap();
    std::fs::remove_file(user.dir.join("profile")).unwrap();
    let (code, refused) = user.json(&["pull", "dotted@1.0.0"]);
    assert_eq!(code, 1, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("certificate") || message.contains("unknownissuer"), "{message}");
    assert!(!user.dir.join("profile").exists());
}

impl User {
    /// Signs in as admin with the server's certificate pinned.
    fn login(&self, arca: &Arca) {
        let cert = arca.data_dir.join("tls/cert.pem");
        let args =
            ["login", "--server", &arca.url, "-u", "admin", "--ca-cert", cert.to_str().unwrap(), "--password-stdin"];
        let out = self.run_with_stdin(&args, &format!("{ADMIN_PASSWORD}\n"));
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn session(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("config/arca/credentials.json")).unwrap()).unwrap()
    }

    /// Makes the stored access token look expired: the next command must refresh.
    fn expire_access_token(&self) {
        let mut session = self.session();
        session["access_expires_at"] = Value::from(0);
        std::fs::write(self.dir.join("config/arca/credentials.json"), serde_json::to_vec(&session).unwrap()).unwrap();
    }

    /// Runs the commands at once (each with `--output json`); their outputs, in order.
    fn concurrently(&self, commands: &[&[&str]]) -> Vec<Output> {
        let children: Vec<_> = commands
            .iter()
            .map(|args| {
                self.command(&[&["--output", "json"], *args].concat())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
    }
}

/// Issue 22 acceptance 1: four `arca ls` and an `arca push` at once, on one login, all
/// succeed — when they must refresh the session (the lock makes one refresh and the others
/// use its access token) and when the stored access token is fresh. A refresh token two
/// rotations old, presented as from another machine, still revokes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let user = User::new(&dir.path().join("user"));
    user.login(&arca);
    let first = user.session()["refresh_token"].as_str().unwrap().to_owned();
    for (round, stale) in [(1, true), (2, false)] {
        if stale {
            user.expire_access_token();
        }
        let file = format!("tool-{round}.tar.gz");
        std::fs::write(user.dir.join(&file), tar_gz(&[("bin/tool", format!("round {round}").as_bytes())])).unwrap();
        let ls: &[&str] = &["ls"];
        let version = format!("{round}.0.0");
        let push: &[&str] = &["push", &file, "--name", "together", "--version", &version];
        for (i, out) in user.concurrently(&[ls, ls, push, ls, ls]).iter().enumerate() {
            assert!(out.status.success(), "round {round}, command {i}: {}", stderr(out));
        }
    }
    // One more rotation: `first` is now two rotations old.
    user.expire_access_token();
    user.ok(&["whoami"]);
    let thief = arca.api(None);
    let stolen = thief.refresh(&first).await.unwrap_err();
    assert_eq!(stolen.code(), Some("refresh_token_reused"), "{stolen}");
    user.expire_access_token();
    let (code, revoked) = user.json(&["ls"]);
    assert_eq!(code, 4, "the session is revoked: {revoked}");
}

/// The server's grace window: the immediately previous refresh token presented again at
/// once (two clients refreshing together) gets a working pair of the same session; an
/// older one still counts as theft and revokes the session.
async fn refresh_grace_window(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let api = arca.api(None);
    let refresh_token = |t: &arca_client::TokenResponse| t.refresh_token.clone().expect("the CLI's client asks for it");
    let r0 = refresh_token(&api.login("admin", ADMIN_PASSWORD).await.unwrap());
    let r1 = refresh_token(&api.refresh(&r0).await.unwrap());
    // The other client, a moment later, with the token just rotated.
    let beside = api.refresh(&r0).await.unwrap();
    assert_ne!(refresh_token(&beside), r1);
    assert_eq!(arca.api(Some(&beside.access_token)).me().await.unwrap().username, "admin");
    // Both clients go on.
    let r2 = refresh_token(&api.refresh(&r1).await.unwrap());
    api.refresh(&refresh_token(&beside)).await.unwrap();
    // r0 is now older than the latest rotation: theft.
    let reused = api.refresh(&r0).await.unwrap_err();
    assert_eq!(reused.code(), Some("refresh_token_reused"), "{reused}");
    let dead = api.refresh(&r2).await.unwrap_err();
    assert_eq!(dead.status(), Some(401), "the family is revoked: {dead}");
}
crate::both_backends!(refresh_grace_window);

/// Issue 22 acceptance 2: a CI token with the scopes the token form suggests for pushing
/// (artifacts_read + artifacts_write, no artifacts_read_all) pushes and watches its own
/// artifact to approval (exit 0); the same push again reports the same artifact (exit 0);
/// other bytes under that NAME@VERSION fail with a message naming the conflict; a token
/// without artifacts_read is told which scopes a push needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_token_pushes_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let user = User::new(&dir.path().join("user"));
    user.login(&arca);
    let token = |scopes: &[&str]| {
        let mut args = vec!["token", "create", "--name", "ci"];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        user.ok(&args)["token"].as_str().unwrap().to_owned()
    };
    let push_token = token(&["artifacts_read", "artifacts_write"]);
    let write_only = token(&["artifacts_write"]);
    let ci = User::new(&dir.path().join("ci"));
    let cert = arca.data_dir.join("tls/cert.pem");
    let push = |token: &str, file: &str, bytes: &[u8], name: &str| {
        std::fs::write(ci.dir.join(file), tar_gz(&[("bin/tool", bytes)])).unwrap();
        ci.command(&["--output", "json", "push", file, "--name", name, "--version", "1.0.0"])
            .env("ARCA_TOKEN", token)
            .env("ARCA_SERVER", &arca.url)
            .env("ARCA_CA_CERT", &cert)
            .output()
            .unwrap()
    };
    let json = |out: &Output| -> Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out)))
    };
    let out = push(&push_token, "tool.tar.gz", b"one", "ci-tool");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = json(&out);
    assert_eq!(first["status"], "approved", "{first}");
    let out = push(&push_token, "tool.tar.gz", b"one", "ci-tool");
    assert_eq!(out.status.code(), Some(0), "the same push again: {}", stderr(&out));
    let again = json(&out);
    assert_eq!((&again["id"], &again["status"]), (&first["id"], &first["status"]), "{again}");
    let out = push(&push_token, "other.tar.gz", b"two", "ci-tool");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("ci-tool@1.0.0 exists with other content"), "{message}");
    assert!(message.contains(first["sha256"].as_str().unwrap()), "names the existing digest: {message}");
    let out = push(&write_only, "tool.tar.gz", b"three", "ci-write-only");
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("artifacts_write and artifacts_read"), "{}", stderr(&out));
}

/// Issue 22 acceptance 6 (the usage errors): clap's whole message, not its first line.
#[test]
fn usage_errors_say_what_is_missing_and_suggest() {
    let dir = tempfile::tempdir().unwrap();
    let user = User::new(dir.path());
    let out = user.run(&["push", "file.tar.gz"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "arca: error: the following required arguments were not provided:\n  --name <NAME>\n  --version <VERSION>\n\n\
         Usage: arca push --name <NAME> --version <VERSION> <FILE>\n\nFor more information, try '--help'.\n"
    );
    let out = user.run(&["pul", "tool@1.0.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "arca: error: unrecognized subcommand 'pul'\n\n  tip: some similar subcommands exist: 'push', 'pull'\n\n\
         Usage: arca [OPTIONS] <COMMAND>\n\nFor more information, try '--help'.\n"
    );
}
