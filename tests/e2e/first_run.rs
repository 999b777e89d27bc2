//! Issue 11: a newcomer's first run. `arca serve` with no path flag at all (the relative
//! default `./arca-data`), Trivy found on `PATH`, one DB import exactly as README says, and
//! an uploaded archive ends approved, signed and pulled.

use std::process::Command;

use reqwest::Method;

use crate::helpers::{bin, Arca, Backend, Cli, Trivy, ADMIN_PASSWORD};

#[tokio::test]
async fn the_default_relative_data_dir_gets_an_artifact_approved_signed_and_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let trivy = Trivy::from_env();
    // `trivy` on PATH, as a user who installed it would have it.
    let path_dir = dir.path().join("bin");
    std::fs::create_dir_all(&path_dir).unwrap();
    std::os::unix::fs::symlink(&trivy.bin, path_dir.join("trivy")).unwrap();
    let path = format!("{}:{}", path_dir.display(), std::env::var("PATH").unwrap_or_default());

    // README: `arca admin trivy-db-import ./db --cache-dir arca-data/trivy`, relative.
    let import = Command::new(bin("arca"))
        .args(["admin", "trivy-db-import"])
        .arg(&trivy.db)
        .args(["--cache-dir", "arca-data/trivy"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .in_working_dir(&cwd)
        .env("ARCA_TRIVY", "trivy")
        .env("PATH", &path)
        .start()
        .await;
    // Every path was resolved once and logged absolute.
    let logged = arca.stdout.text();
    let data_dir = cwd.join("arca-data");
    assert!(
        logged.contains(&format!("\"trivy_cache_dir\":\"{}\"", data_dir.join("trivy").display())),
        "resolved paths are logged: {logged}"
    );
    assert!(logged.contains(&format!("\"trivy\":\"{}\"", path_dir.join("trivy").display())), "{logged}");

    let cli = Cli { dir: cwd.clone() };
    cli.login(&arca);
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(12);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "tool/README", &b"hello world\n"[..]).unwrap();
    let bytes = archive.into_inner().unwrap().finish().unwrap();
    std::fs::write(cwd.join("tool.tar.gz"), &bytes).unwrap();
    let out = cli.run(&["push", "tool.tar.gz", "--name", "tool", "--version", "1.0.0"]);
    assert!(
        out.status.success(),
        "push: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let page: serde_json::Value =
        arca.call(Method::GET, "/api/artifacts?name=tool", Some(&admin), None).await.json().await.unwrap();
    let artifact = &page["items"][0];
    assert_eq!(artifact["status"], "approved", "{artifact}");
    let id = artifact["id"].as_str().unwrap();
    let signature = arca.call(Method::GET, &format!("/api/artifacts/{id}/signature"), Some(&admin), None).await;
    assert_eq!(signature.status(), 200);
    let out = cli.run(&["pull", "tool@1.0.0", "-o", "pulled.tar.gz"]);
    assert!(out.status.success(), "pull: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(cwd.join("pulled.tar.gz")).unwrap(), bytes);
}

/// `make run` takes a `trivy` already on PATH when it is the supported version (no build),
/// and ignores one of another version.
#[test]
fn make_run_uses_a_trivy_on_path_at_the_supported_version() {
    let dir = tempfile::tempdir().unwrap();
    let real = Trivy::from_env();
    let tools = crate::helpers::repo_root().join("scripts/tools.sh");
    let run = |version: &str| {
        let path_dir = dir.path().join(version);
        std::fs::create_dir_all(&path_dir).unwrap();
        let fake = path_dir.join("trivy");
        std::fs::write(&fake, format!("#!/bin/sh\necho 'Version: {version}'\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", path_dir.display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new("bash").arg(&tools).args(["trivy", "--prefer-path"]).env("PATH", path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (fake, std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    let (fake, chosen) = run("0.74.3");
    assert_eq!(chosen, fake, "the supported trivy on PATH is used");
    let (fake, chosen) = run("0.51.0");
    assert_ne!(chosen, fake, "another version is not used");
    assert_eq!(chosen, real.bin, "the pinned build is used instead");
}
