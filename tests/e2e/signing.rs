//! Issue 6 (Arca's own signatures): stock openssl verifies what the API returns, and the
//! download gate refuses (and audits) a signature that no longer verifies.

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::Value;

use crate::artifacts::{payload, publish};
use crate::helpers::{Arca, Backend, ADMIN_PASSWORD};

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new("openssl").args(args).current_dir(dir).output().unwrap()
}

async fn signature(arca: &Arca, token: &str, id: &str) -> Value {
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/signature"), Some(token), None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// 1) openssl verifies Arca's signature of a downloaded artifact with only what the API returned.
async fn openssl_verifies_arca_signatures(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(3 * 1024 * 1024 + 5, 61);
    let id = publish(&arca, &admin, "signed", bytes.clone()).await;
    let download = arca.call(Method::GET, &format!("/api/artifacts/{id}/download"), Some(&admin), None).await;
    assert_eq!(download.status(), 200);
    let header = download.headers()["x-arca-signature"].to_str().unwrap().to_owned();
    let body = download.bytes().await.unwrap();
    let work = dir.path();
    std::fs::write(work.join("artifact.bin"), &body).unwrap();

    let sig = signature(&arca, &admin, &id).await;
    assert_eq!(sig["algorithm"], "ecdsa-p256-sha256");
    assert_eq!(sig["signature"], header.as_str(), "the download carries the same signature");
    assert_eq!(sig["digest"], format!("sha256:{}", crate::artifacts::sha256_hex(&bytes)));
    std::fs::write(work.join("sig.der"), STANDARD.decode(sig["signature"].as_str().unwrap()).unwrap()).unwrap();
    let chain = sig["certificate_chain"].as_str().unwrap();
    let blocks: Vec<String> = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .map(|b| b.trim().to_owned() + "\n")
        .filter(|b| b.len() > 10)
        .collect();
    assert_eq!(blocks.len(), 2, "signing certificate and CA");
    std::fs::write(work.join("leaf.pem"), &blocks[0]).unwrap();
    std::fs::write(work.join("ca.pem"), &blocks[1]).unwrap();
    let out = openssl(&["x509", "-in", "leaf.pem", "-pubkey", "-noout", "-out", "pub.pem"], work);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = openssl(&["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "artifact.bin"], work);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK", "{}", String::from_utf8_lossy(&out.stderr));
    // The certificate chains to the CA, and is for code signing.
    let out = openssl(&["verify", "-CAfile", "ca.pem", "-purpose", "any", "leaf.pem"], work);
    assert!(String::from_utf8_lossy(&out.stdout).contains("leaf.pem: OK"), "{}", String::from_utf8_lossy(&out.stderr));
    let text =
        String::from_utf8_lossy(&openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"], work).stdout).into_owned();
    assert!(text.contains("Digital Signature") && text.contains("Code Signing"), "{text}");
    // 4) cosign (built from the Go module proxy by make test) verifies it offline with the
    // certificate's public key, no transparency log.
    let cosign =
        std::env::var("ARCA_TEST_COSIGN").expect("ARCA_TEST_COSIGN is not set: run the tests through `make test`");
    std::fs::write(work.join("sig.b64"), sig["signature"].as_str().unwrap()).unwrap();
    let out = Command::new(&cosign)
        .args([
            "verify-blob",
            "--key",
            "pub.pem",
            "--signature",
            "sig.b64",
            "--insecure-ignore-tlog=true",
            "artifact.bin",
        ])
        .current_dir(work)
        .env("HOME", work)
        .output()
        .unwrap();
    assert!(out.status.success(), "cosign: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Verified OK"));
    let out = Command::new(&cosign)
        .args(["verify-blob", "--key", "pub.pem", "--signature", "sig.b64", "--insecure-ignore-tlog=true", "leaf.pem"])
        .current_dir(work)
        .env("HOME", work)
        .output()
        .unwrap();
    assert!(!out.status.success(), "cosign accepted other bytes");
    // `arca verify` offline, with the CA as trust bundle; other bytes fail.
    std::fs::write(work.join("chain.pem"), chain).unwrap();
    let verify = |file: &str| {
        Command::new(crate::helpers::bin("arca"))
            .args(["verify", file, "--signature", "sig.der", "--chain", "chain.pem", "--trust", "ca.pem"])
            .current_dir(work)
            .output()
            .unwrap()
    };
    let out = verify("artifact.bin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": valid"));
    // Other bytes do not verify.
    std::fs::write(work.join("other.bin"), b"other").unwrap();
    let out = openssl(&["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "other.bin"], work);
    assert!(!out.status.success());
    let out = verify("other.bin");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The key never leaves the data dir, readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(arca.data_dir.join("signing/key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "signing key readable by others");
    assert!(!arca.stdout.text().contains("PRIVATE KEY") && !arca.stderr.text().contains("PRIVATE KEY"));
}
crate::both_backends!(openssl_verifies_arca_signatures);

/// 3) A tampered signature in the database: the download is refused with the reason, and
/// the audit log records the failed verification.
#[tokio::test]
async fn tampered_signatures_block_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let a = publish(&arca, &admin, "first", payload(4096, 1)).await;
    let b = publish(&arca, &admin, "second", payload(4096, 2)).await;
    let other = signature(&arca, &admin, &b).await;
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display())).await.unwrap();
    sqlx::query("UPDATE signatures SET signature = $1 WHERE artifact_id = $2")
        .bind(other["signature"].as_str().unwrap())
        .bind(&a)
        .execute(&pool)
        .await
        .unwrap();
    let r = arca.call(Method::GET, &format!("/api/artifacts/{a}/download"), Some(&admin), None).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "signature_invalid");
    assert!(body["detail"].as_str().unwrap().contains("does not match"), "{body}");
    // A signature removed altogether is refused too; the untouched artifact still downloads.
    sqlx::query("DELETE FROM signatures WHERE artifact_id = $1").bind(&a).execute(&pool).await.unwrap();
    let r = arca.call(Method::GET, &format!("/api/artifacts/{a}/download"), Some(&admin), None).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "signature_invalid");
    assert!(body["detail"].as_str().unwrap().contains("no Arca signature"), "{body}");
    assert_eq!(arca.call(Method::GET, &format!("/api/artifacts/{b}/download"), Some(&admin), None).await.status(), 200);
    let audit: Vec<Value> = arca
        .call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None)
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verifications: Vec<&Value> = audit.iter().filter(|e| e["action"] == "artifacts.verify").collect();
    assert!(
        verifications.iter().any(|e| e["target"] == a.as_str() && e["outcome"] == "failure"),
        "failed verification not audited: {verifications:?}"
    );
    assert!(verifications.iter().any(|e| e["target"] == b.as_str() && e["outcome"] == "success"));
}

/// Runs openssl in `dir`, asserting success.
fn ossl(dir: &std::path::Path, args: &[&str]) {
    let out = openssl(args, dir);
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A P-256 CA `name` (key `name.key`, certificate `name.pem`).
fn make_ca(dir: &std::path::Path, name: &str) {
    ossl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
}

/// A signing certificate `name.pem` (key `name.key`) issued by `ca`, with `extensions`.
fn make_leaf(dir: &std::path::Path, name: &str, ca: &str, days: &str, extensions: &str) {
    ossl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    ossl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            days,
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// 2) Publisher signatures made with openssl: valid under a trusted CA; untrusted CA,
/// expired certificate, no digitalSignature and other bytes each refused with its own reason.
#[tokio::test]
async fn publisher_signatures_are_checked_against_the_trust_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let signing = "keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n";
    make_ca(&pki, "trusted-ca");
    make_ca(&pki, "rogue-ca");
    make_leaf(&pki, "good", "trusted-ca", "30", signing);
    make_leaf(&pki, "rogue", "rogue-ca", "30", signing);
    make_leaf(&pki, "expired", "trusted-ca", "-1", signing);
    make_leaf(&pki, "encipher", "trusted-ca", "30", "keyUsage=critical,keyEncipherment\n");
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRUST_BUNDLE", pki.join("trusted-ca.pem").to_str().unwrap())
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(100_000, 9);
    std::fs::write(pki.join("artifact.bin"), &bytes).unwrap();
    std::fs::write(pki.join("other.bin"), b"other bytes").unwrap();
    let id = publish(&arca, &admin, "published", bytes).await;
    let attach = |signer: &str, file: &str| {
        ossl(&pki, &["dgst", "-sha256", "-sign", &format!("{signer}.key"), "-out", "sig.der", file]);
        let signature = STANDARD.encode(std::fs::read(pki.join("sig.der")).unwrap());
        let chain = std::fs::read_to_string(pki.join(format!("{signer}.pem"))).unwrap();
        serde_json::json!({"signature": signature, "certificate_chain": chain})
    };
    let cases = [
        ("good", "artifact.bin", "valid", "signature verified"),
        ("rogue", "artifact.bin", "untrusted", "does not chain to a CA in the trust bundle"),
        ("expired", "artifact.bin", "invalid", "outside its validity period"),
        ("encipher", "artifact.bin", "invalid", "lacks the digitalSignature key usage"),
        ("good", "other.bin", "invalid", "does not match the artifact's digest"),
    ];
    for (signer, file, result, reason) in cases {
        let body = attach(signer, file);
        let r = arca.call(Method::POST, &format!("/api/artifacts/{id}/signatures"), Some(&admin), Some(body)).await;
        assert_eq!(r.status(), 201);
        let verdict: Value = r.json().await.unwrap();
        assert_eq!(verdict["result"], result, "{signer}/{file}: {verdict}");
        assert!(verdict["reason"].as_str().unwrap().contains(reason), "{signer}/{file}: {verdict}");
    }
    let listed: Value = arca
        .call(Method::GET, &format!("/api/artifacts/{id}/signatures"), Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    let audit = arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap();
    assert_eq!(audit.matches("publisher_signature").count(), 5, "every attempt is audited");
}

/// Rotation: signatures under the old certificate verify while it stays trusted; once it is
/// not, downloads are refused until `arca admin resign` re-signs with the new key.
#[tokio::test]
async fn rotation_keeps_old_signatures_while_trusted_and_resign_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let id = publish(&arca, &admin, "rotated", payload(5000, 3)).await;
    let old_cert = arca.data_dir.join("signing/cert.pem");
    drop(arca);
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_ca(&pki, "new-ca");
    make_leaf(
        &pki,
        "new-signing",
        "new-ca",
        "30",
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n",
    );
    let chain = std::fs::read_to_string(pki.join("new-signing.pem")).unwrap()
        + &std::fs::read_to_string(pki.join("new-ca.pem")).unwrap();
    std::fs::write(pki.join("new-chain.pem"), chain).unwrap();
    let with_new_key = |trust_old: bool| {
        let pki = pki.clone();
        let old_cert = old_cert.clone();
        let dir = dir.path().to_owned();
        async move {
            let mut builder = Arca::builder(&dir, Backend::Sqlite)
                .await
                .env("ARCA_SIGNING_KEY", pki.join("new-signing.key").to_str().unwrap())
                .env("ARCA_SIGNING_CERT", pki.join("new-signing.pem").to_str().unwrap())
                .env("ARCA_SIGNING_CHAIN", pki.join("new-chain.pem").to_str().unwrap());
            if trust_old {
                builder = builder.env("ARCA_SIGNING_TRUSTED", old_cert.to_str().unwrap());
            }
            builder.start().await
        }
    };
    let download = |arca: &Arca, token: &str| {
        let url = arca.url(&format!("/api/artifacts/{id}/download"));
        let request = arca.client.get(url).bearer_auth(token.to_owned());
        async move { request.send().await.unwrap() }
    };
    let arca = with_new_key(true).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(download(&arca, &admin).await.status(), 200, "old signature, old certificate still trusted");
    drop(arca);
    let arca = with_new_key(false).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let refused = download(&arca, &admin).await;
    assert_eq!(refused.status(), 500);
    assert!(refused.text().await.unwrap().contains("not trusted"));
    let r = arca.call(Method::POST, "/api/admin/resign", Some(&admin), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["resigned"], 1);
    assert_eq!(download(&arca, &admin).await.status(), 200);
    let sig = signature(&arca, &admin, &id).await;
    assert!(sig["certificate_chain"]
        .as_str()
        .unwrap()
        .starts_with(&std::fs::read_to_string(pki.join("new-signing.pem")).unwrap()));
}

/// `require_publisher_signature`: quarantined until a valid publisher signature is attached.
#[tokio::test]
async fn policy_can_require_a_publisher_signature() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_ca(&pki, "ca");
    make_leaf(&pki, "publisher", "ca", "30", "keyUsage=critical,digitalSignature\n");
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRUST_BUNDLE", pki.join("ca.pem").to_str().unwrap())
        .env("ARCA_POLICY_REQUIRE_PUBLISHER_SIGNATURE", "true")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(2000, 4);
    std::fs::write(pki.join("artifact.bin"), &bytes).unwrap();
    let (id, url) =
        crate::artifacts::create(&arca, &admin, "needs-sig", bytes.len() as u64, &crate::artifacts::sha256_hex(&bytes))
            .await;
    assert_eq!(crate::artifacts::put(&arca, &url, bytes).await.status(), 200);
    assert_eq!(crate::artifacts::complete(&arca, &admin, &id).await.status(), 200);
    let done = crate::artifacts::wait_final(&arca, &admin, &id).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    assert_eq!(done["policy_reasons"][0]["rule"], "publisher_signature");
    ossl(&pki, &["dgst", "-sha256", "-sign", "publisher.key", "-out", "sig.der", "artifact.bin"]);
    let body = serde_json::json!({
        "signature": STANDARD.encode(std::fs::read(pki.join("sig.der")).unwrap()),
        "certificate_chain": std::fs::read_to_string(pki.join("publisher.pem")).unwrap(),
    });
    let r = arca.call(Method::POST, &format!("/api/artifacts/{id}/signatures"), Some(&admin), Some(body)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["result"], "valid");
    // Passing now, it is signed, then approved.
    let done = crate::artifacts::wait_final(&arca, &admin, &id).await;
    assert_eq!(done["status"], "approved", "{done}");
}
