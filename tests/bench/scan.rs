//! Issue 5 figures: scan wall time through Arca (blob fetch, detection, extraction, Trivy,
//! policy) vs the same `trivy` command run by hand on the same input, and a 1 GiB artifact
//! from upload to its final status.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::Server;

/// Uploads `path` through the client (hashed first, untimed) and returns seconds the scan
/// took, seconds from the create call to the final status, and that status.
async fn publish(api: &arca_client::Client, path: &std::path::Path, name: &str) -> anyhow::Result<(f64, f64, String)> {
    let source = arca_client::Source::File(path.to_owned());
    let (sha256, size) = source.digest(None).await?;
    let started = Instant::now();
    let declared = arca_client::NewArtifact {
        name: name.to_owned(),
        version: "1".to_owned(),
        filename: path.file_name().and_then(|n| n.to_str()).unwrap_or("f").to_owned(),
        size,
        sha256,
        labels: Default::default(),
        description: String::new(),
    };
    let created = api.create_artifact(&declared).await?;
    let id = created.artifact.id;
    api.upload(&id, &created.upload, &source, size, &Default::default()).await?;
    api.complete(&id).await?;
    let a = api.wait_final(&id, Duration::from_secs(3600), None).await?;
    let scan_ms = a.scan.as_ref().map_or(0, |s| s.finished_at - s.started_at);
    Ok((scan_ms as f64 / 1000.0, started.elapsed().as_secs_f64(), a.status.to_string()))
}

fn best_by_hand(trivy: &str, cache: &std::path::Path, target: &std::path::Path) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(trivy_by_hand(trivy, cache, target)?);
    }
    Ok(best)
}

/// The same Trivy invocation Arca makes, by hand.
fn trivy_by_hand(trivy: &str, cache: &std::path::Path, target: &std::path::Path) -> anyhow::Result<f64> {
    let out = target.parent().unwrap_or(target).join("by-hand.json");
    let started = Instant::now();
    let status = Command::new(trivy)
        .args(["rootfs"])
        .arg(target)
        .args(["--scanners", "vuln,secret,license", "--format", "json", "--output"])
        .arg(&out)
        .args(["--skip-db-update", "--skip-java-db-update", "--skip-version-check", "--disable-telemetry"])
        .args(["--offline-scan", "--no-progress", "--quiet", "--cache-backend", "memory", "--cache-dir"])
        .arg(cache)
        .status()?;
    anyhow::ensure!(status.success(), "trivy by hand failed");
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(arca: &str) -> anyhow::Result<()> {
    let trivy = std::env::var("ARCA_BENCH_TRIVY").unwrap_or_else(|_| "trivy".into());
    println!("== scanning (real Trivy, fixture DB)");
    let server = Server::start(arca, &[]).await?;
    let api = server.api().await?;
    let cache = server.dir.path().join("trivy-cache");
    let work = server.dir.path().join("inputs");

    // A Go binary (module info embedded): the go toolchain's own `go` binary is at hand.
    let go = String::from_utf8(Command::new("go").args(["env", "GOROOT"]).output()?.stdout)?.trim().to_owned();
    let go_bin = work.join("go-bin");
    std::fs::create_dir_all(&go_bin)?;
    std::fs::copy(std::path::Path::new(&go).join("bin/gofmt"), go_bin.join("gofmt"))?;
    let (mut arca_s, mut status) = (f64::INFINITY, String::new());
    for round in 0..3 {
        let (s, _, st) = publish(&api, &go_bin.join("gofmt"), &format!("gofmt-{round}")).await?;
        (arca_s, status) = (arca_s.min(s), st);
    }
    let hand = best_by_hand(&trivy, &cache, &go_bin)?;
    println!("scan of a Go binary (gofmt): arca {arca_s:.3} s (scan record, -> {status}) vs trivy by hand {hand:.3} s -> {:.2}x  [target <= 1.1x] (best of 3 each)", arca_s / hand);

    // A 100 MiB tar.gz: random data plus the Go binary.
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    let status = Command::new("head")
        .args(["-c", "104857600", "/dev/urandom"])
        .stdout(std::fs::File::create(tree.join("data.bin"))?)
        .status()?;
    anyhow::ensure!(status.success());
    std::fs::copy(go_bin.join("gofmt"), tree.join("gofmt"))?;
    let archive = work.join("archive.tar.gz");
    let status = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&tree).arg(".").status()?;
    anyhow::ensure!(status.success());
    let (arca_s, _, status) = publish(&api, &archive, "archive").await?;
    // By hand: `tar -xzf` into a fresh directory, then the same trivy command.
    let mut hand = f64::INFINITY;
    for round in 0..3 {
        let out = work.join(format!("by-hand-{round}"));
        std::fs::create_dir_all(&out)?;
        let started = Instant::now();
        let status = Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&out).status()?;
        anyhow::ensure!(status.success());
        let extract = started.elapsed().as_secs_f64();
        hand = hand.min(extract + trivy_by_hand(&trivy, &cache, &out)?);
        std::fs::remove_dir_all(&out)?;
    }
    println!("scan of a 100 MiB tar.gz: arca {arca_s:.3} s (scan record, -> {status}; decrypt + safe extraction + trivy) vs by hand (tar -xzf + the same trivy command) {hand:.3} s -> {:.2}x  [target <= 1.1x]", arca_s / hand);

    // Signing on approval and the download gate's verification (both over the digest, so
    // independent of the artifact's size), next to the approve path of the 100 MiB archive.
    let config = shared::core::signing::SigningConfig { files: None, chain: None, trusted: None, trust_bundle: None };
    let signer = shared::core::signing::Signer::load(&config, &server.dir.path().join("signer"))?;
    let trusted = shared::core::signing::TrustedSigners::load(&config, &server.dir.path().join("signer"))?;
    let signed_at = shared::core::db::now_ms();
    let digest = [42u8; 32];
    let rounds = 1000;
    let started = Instant::now();
    let (mut signature, mut chain) = (Vec::new(), String::new());
    for _ in 0..rounds {
        (signature, chain) = signer.sign(&digest)?;
    }
    let sign_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        trusted.verify(&digest, &signature, &chain, signed_at).map_err(|e| anyhow::anyhow!(e))?;
    }
    let verify_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    println!(
        "signing on approval {sign_ms:.3} ms = {:.3}% of the 100 MiB approve path ({:.2} s)  [target < 5%]; download-gate verification {verify_ms:.3} ms  [target < 1 ms]",
        sign_ms / (arca_s * 1000.0) * 100.0,
        arca_s
    );

    // 1 GiB from upload to final status.
    let big = work.join("one-gib.bin");
    let status = Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&big)?)
        .status()?;
    anyhow::ensure!(status.success());
    let (scan_s, total, status) = publish(&api, &big, "big").await?;
    println!("1 GiB artifact, upload -> final status ({status}): {total:.1} s (of which the scan {scan_s:.1} s)  [seed budget 300 s; target < 60 s]");
    Ok(())
}
