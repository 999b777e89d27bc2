//! Issue 4 figure (S3 store): a presigned upload through Arca (create, one presigned PUT
//! straight to MinIO with the SHA-256 checksum and SSE header, complete) vs the same bytes
//! put directly with aws-sdk-s3 (same checksum, same SSE), in the same run.

use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;

use crate::server::Server;

const SIZE: u64 = 256 << 20;

pub async fn run(arca: &str) -> anyhow::Result<()> {
    let endpoint = std::env::var("ARCA_BENCH_S3_ENDPOINT")
        .map_err(|_| anyhow::anyhow!("ARCA_BENCH_S3_ENDPOINT is not set (scripts/bench.sh starts MinIO)"))?;
    let (user, password) = ("arca-test", "arca-test-secret");
    println!("== artifacts (S3 store, MinIO with SSE): 256 MiB in one presigned PUT");
    let server = Server::start(
        arca,
        &[
            ("ARCA_S3_ENDPOINT", &endpoint),
            ("ARCA_S3_BUCKET", "bench-arca"),
            ("ARCA_S3_ACCESS_KEY", user),
            ("ARCA_S3_SECRET_KEY", password),
            ("ARCA_S3_MULTIPART_THRESHOLD", "1073741824"),
        ],
    )
    .await?;
    let file = server.dir.path().join("payload.bin");
    let status = std::process::Command::new("head")
        .args(["-c", &SIZE.to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(&file)?)
        .status()?;
    anyhow::ensure!(status.success(), "cannot create the test file");
    let bytes = std::fs::read(&file)?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let sha256_b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&sha256)?);
    drop(bytes);

    let sdk = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(user, password, None, None, "bench"))
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    );
    let _ = sdk.create_bucket().bucket("bench-direct").send().await;
    let api = server.api().await?;
    let source = arca_client::Source::File(file.clone());
    let (mut arca_times, mut sdk_times) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let started = Instant::now();
        let declared = arca_client::NewArtifact {
            name: "bench".to_owned(),
            version: round.to_string(),
            filename: "bench.bin".to_owned(),
            size: SIZE,
            sha256: sha256.clone(),
            labels: Default::default(),
            description: String::new(),
        };
        let created = api.create_artifact(&declared).await?;
        anyhow::ensure!(!created.upload.is_multipart(), "expected one presigned PUT");
        api.upload(&created.artifact.id, &created.upload, &source, SIZE, &Default::default()).await?;
        api.complete(&created.artifact.id).await?;
        arca_times.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        sdk.put_object()
            .bucket("bench-direct")
            .key(format!("direct-{round}"))
            .content_length(i64::try_from(SIZE)?)
            .checksum_sha256(&sha256_b64)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from_path(&file).await?)
            .send()
            .await?;
        sdk_times.push(started.elapsed().as_secs_f64());
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (a, d) = (best(&arca_times), best(&sdk_times));
    println!(
        "upload 256 MiB: arca presigned (create + PUT + complete) {a:.2} s ({:.0} MiB/s) vs aws-sdk-s3 put_object {d:.2} s ({:.0} MiB/s) -> {:.2}x  [target <= 1.05x] (best of 3)",
        256.0 / a,
        256.0 / d,
        a / d
    );
    Ok(())
}
