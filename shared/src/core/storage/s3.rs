//! S3-compatible object store (MinIO in the cluster). Clients upload straight to the store
//! through presigned URLs whose signature covers the length, the SHA-256 checksum and the
//! server-side encryption header, so the store itself refuses any other bytes. Objects are
//! `quarantine/<id>` until approved, then `permanent/<id>`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{Area, BlobStream};
use crate::core::config::{S3Config, Sse};

/// A request the client sends as given: method, URL and the headers that were signed.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// A part of a multipart upload the store already holds.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UploadedPart {
    pub number: i32,
    pub size: i64,
    /// Hex SHA-256 of the part, as verified by the store.
    pub sha256: Option<String>,
    #[serde(skip)]
    pub etag: Option<String>,
}

/// What `HEAD` says about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub size: u64,
    /// Hex SHA-256 of the whole object when the store verified it on upload (single `PUT`).
    pub sha256: Option<String>,
    pub sse: Option<String>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone)]
pub struct StaleUpload {
    pub key: String,
    pub upload_id: String,
}

pub struct S3Store {
    client: Client,
    /// Signs URLs for the address clients use (`ARCA_S3_PUBLIC_ENDPOINT`).
    presigner: Client,
    bucket: String,
    sse: Sse,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Lifetime of presigned download URLs: short, so that a URL handed out before an
    /// artifact is quarantined again stops working within it.
    pub download_url_ttl: Duration,
}

fn key(area: Area, id: &str) -> String {
    format!("{}/{id}", area.dir())
}

fn hex_to_b64(sha256_hex: &str) -> anyhow::Result<String> {
    Ok(STANDARD.encode(hex::decode(sha256_hex).context("sha256 is not hex")?))
}

fn b64_to_hex(b64: &str) -> Option<String> {
    STANDARD.decode(b64).ok().filter(|b| b.len() == 32).map(hex::encode)
}

fn is_not_found<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

fn presigned(request: &PresignedRequest) -> Presigned {
    Presigned {
        url: request.uri().to_owned(),
        headers: request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
    }
}

/// Where the browser-upload CORS rules live after `setup-storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsSetting {
    /// No origins configured: browsers cannot upload directly.
    None,
    /// Put on the bucket.
    Bucket,
    /// The store has no per-bucket CORS (MinIO); its server-wide setting applies.
    Server,
}

impl S3Store {
    /// A client of the store: no request is made (a function's cold start does no I/O).
    pub fn connect(config: &S3Config) -> anyhow::Result<Self> {
        let client = |endpoint: &str| {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                .build_https();
            let sdk = aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(Region::new(config.region.clone()))
                .credentials_provider(Credentials::new(&config.access_key, &config.secret_key, None, None, "arca"))
                .force_path_style(true)
                .http_client(http)
                // Checksums are set explicitly (the declared SHA-256), never computed over an
                // empty presigned body.
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
                .build();
            Client::from_conf(sdk)
        };
        Ok(Self {
            client: client(&config.endpoint),
            presigner: client(config.public_endpoint.as_deref().unwrap_or(&config.endpoint)),
            bucket: config.bucket.clone(),
            sse: config.sse.clone(),
            multipart_threshold: config.multipart_threshold,
            part_size: config.part_size,
            download_url_ttl: config.download_url_ttl,
        })
    }

    /// Creates the bucket (private, default encryption) if it is missing; idempotent.
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                // New buckets are private: no policy or ACL grants anyone else access.
                self.client.create_bucket().bucket(&self.bucket).send().await?;
                tracing::info!(bucket = %self.bucket, "S3: created bucket");
            }
            Err(e) => return Err(e.into()),
        }
        let default = match &self.sse {
            Sse::S3 => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
            Sse::Kms(key) => ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(key),
        }
        .build()?;
        let rules = ServerSideEncryptionConfiguration::builder()
            .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build())
            .build()?;
        self.client
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(rules)
            .send()
            .await
            .context("default bucket encryption")?;
        Ok(())
    }

    /// Lets browsers of `origins` upload with presigned URLs (`PUT` with the signed headers)
    /// and read the `ETag` of parts; nothing else.
    pub async fn configure_cors(&self, origins: &[String]) -> anyhow::Result<CorsSetting> {
        use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
        if origins.is_empty() {
            return Ok(CorsSetting::None);
        }
        let rule = CorsRule::builder()
            .set_allowed_origins(Some(origins.to_vec()))
            .allowed_methods("PUT")
            .allowed_methods("GET")
            .allowed_headers("*")
            .expose_headers("ETag")
            .max_age_seconds(3600)
            .build()?;
        let put = self
            .client
            .put_bucket_cors()
            .bucket(&self.bucket)
            .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build()?)
            .send()
            .await;
        match put {
            Ok(_) => Ok(CorsSetting::Bucket),
            // MinIO has no per-bucket CORS: its server-wide MINIO_API_CORS_ALLOW_ORIGIN applies.
            Err(error) if error.code() == Some("NotImplemented") => Ok(CorsSetting::Server),
            Err(error) => Err(anyhow::Error::new(error).context("bucket CORS")),
        }
    }

    /// Subscribes the notification target `arn` (MinIO's webhook to `ingest`) to objects
    /// created under `quarantine/` (the S3 notification-configuration API).
    pub async fn subscribe(&self, arn: &str) -> anyhow::Result<()> {
        use aws_sdk_s3::types::{
            Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
            QueueConfiguration, S3KeyFilter,
        };
        let filter = NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .filter_rules(FilterRule::builder().name(FilterRuleName::Prefix).value("quarantine/").build())
                    .build(),
            )
            .build();
        let queue = QueueConfiguration::builder()
            .id("arca-ingest")
            .queue_arn(arn)
            .events(Event::S3ObjectCreated)
            .filter(filter)
            .build()?;
        self.client
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(NotificationConfiguration::builder().queue_configurations(queue).build())
            .send()
            .await
            .context("bucket notifications")?;
        Ok(())
    }

    fn sse(&self) -> (ServerSideEncryption, Option<String>) {
        match &self.sse {
            Sse::S3 => (ServerSideEncryption::Aes256, None),
            Sse::Kms(key) => (ServerSideEncryption::AwsKms, Some(key.clone())),
        }
    }

    /// The bucket answers.
    pub async fn check(&self) -> anyhow::Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await?;
        Ok(())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// True when an artifact of `size` bytes is uploaded in parts.
    pub fn is_multipart(&self, size: u64) -> bool {
        size > self.multipart_threshold
    }

    /// Number of parts of a multipart upload of `size` bytes (at most 10,000).
    pub fn part_plan(&self, size: u64) -> (u64, u64) {
        let part_size = self.part_size.max(size.div_ceil(10_000));
        (part_size, size.div_ceil(part_size))
    }

    /// A presigned `PUT` of exactly `size` bytes whose SHA-256 is `sha256_hex`.
    pub async fn presign_put(&self, id: &str, size: u64, sha256_hex: &str, ttl: Duration) -> anyhow::Result<Presigned> {
        let (sse, kms_key) = self.sse();
        let request = self
            .presigner
            .put_object()
            .bucket(&self.bucket)
            .key(key(Area::Quarantine, id))
            .content_length(i64::try_from(size)?)
            .content_type("application/octet-stream")
            .checksum_sha256(hex_to_b64(sha256_hex)?)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            // Single use: the store refuses a second PUT while the object exists.
            .if_none_match("*")
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await?;
        Ok(presigned(&request))
    }

    /// Starts a multipart upload (SHA-256 checksum per part, server-side encryption).
    pub async fn create_multipart(&self, id: &str) -> anyhow::Result<String> {
        let (sse, kms_key) = self.sse();
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key(Area::Quarantine, id))
            .content_type("application/octet-stream")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await?;
        out.upload_id().map(str::to_owned).context("S3 returned no upload id")
    }

    /// A presigned `UploadPart` of exactly `size` bytes with SHA-256 `sha256_hex`.
    pub async fn presign_part(
        &self,
        id: &str,
        upload_id: &str,
        number: i32,
        size: u64,
        sha256_hex: &str,
        ttl: Duration,
    ) -> anyhow::Result<Presigned> {
        let request = self
            .presigner
            .upload_part()
            .bucket(&self.bucket)
            .key(key(Area::Quarantine, id))
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(size)?)
            .checksum_sha256(hex_to_b64(sha256_hex)?)
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await?;
        Ok(presigned(&request))
    }

    /// The parts the store holds for an upload.
    pub async fn list_parts(&self, id: &str, upload_id: &str) -> anyhow::Result<Vec<UploadedPart>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key(Area::Quarantine, id))
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await?;
            parts.extend(out.parts().iter().map(|p| UploadedPart {
                number: p.part_number().unwrap_or(0),
                size: p.size().unwrap_or(0),
                sha256: p.checksum_sha256().and_then(b64_to_hex),
                etag: p.e_tag().map(str::to_owned),
            }));
            if out.is_truncated() != Some(true) {
                break;
            }
            marker = out.next_part_number_marker().map(str::to_owned);
        }
        Ok(parts)
    }

    /// Assembles the uploaded parts into the object.
    pub async fn complete_multipart(&self, id: &str, upload_id: &str, parts: &[UploadedPart]) -> anyhow::Result<()> {
        let completed = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .set_e_tag(p.etag.clone())
                    .set_checksum_sha256(p.sha256.as_deref().and_then(|h| hex_to_b64(h).ok()))
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key(Area::Quarantine, id))
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await?;
        Ok(())
    }

    pub async fn abort_multipart(&self, object_key: &str, upload_id: &str) -> anyhow::Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(object_key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Multipart uploads in progress (optionally only those of one artifact).
    pub async fn multipart_uploads(&self, id: Option<&str>) -> anyhow::Result<Vec<StaleUpload>> {
        let prefix = id.map_or_else(|| format!("{}/", Area::Quarantine.dir()), |id| key(Area::Quarantine, id));
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await?;
            uploads.extend(
                out.uploads().iter().filter_map(|u| {
                    Some(StaleUpload { key: u.key()?.to_owned(), upload_id: u.upload_id()?.to_owned() })
                }),
            );
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
        }
        Ok(uploads)
    }

    /// Size, store-verified SHA-256 and encryption of an object; None when missing.
    pub async fn head(&self, area: Area, id: &str) -> anyhow::Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key(area, id))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                // A multipart object carries a checksum of part checksums (`…-N`), not this.
                sha256: out.checksum_sha256().and_then(b64_to_hex),
                sse: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A presigned `GET` of an approved object, with the download's file name, valid for
    /// `download_url_ttl`.
    pub async fn presign_get(&self, id: &str, content_disposition: &str) -> anyhow::Result<String> {
        let ttl = self.download_url_ttl;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key(Area::Permanent, id))
            .response_content_disposition(content_disposition)
            .response_content_type("application/octet-stream")
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await?;
        Ok(request.uri().to_owned())
    }

    /// Copies the object to the permanent area, then removes the quarantined copy.
    pub async fn promote(&self, id: &str) -> anyhow::Result<()> {
        if self.head(Area::Quarantine, id).await?.is_none() {
            // Done by an earlier delivery that crashed before committing.
            anyhow::ensure!(self.head(Area::Permanent, id).await?.is_some(), "blob {id} is missing");
            return Ok(());
        }
        let (sse, kms_key) = self.sse();
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, key(Area::Quarantine, id)))
            .key(key(Area::Permanent, id))
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await?;
        self.client.delete_object().bucket(&self.bucket).key(key(Area::Quarantine, id)).send().await?;
        Ok(())
    }

    /// Deletes the object in both areas and aborts its multipart uploads.
    pub async fn remove(&self, id: &str) {
        let result = async {
            for upload in self.multipart_uploads(Some(id)).await? {
                self.abort_multipart(&upload.key, &upload.upload_id).await?;
            }
            for area in [Area::Quarantine, Area::Permanent] {
                self.client.delete_object().bucket(&self.bucket).key(key(area, id)).send().await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            // The reconciler removes what is left.
            tracing::warn!(artifact = %id, error = %e, "S3: removing a blob failed");
        }
    }

    /// Ids of the objects in an area.
    pub async fn list(&self, area: Area) -> anyhow::Result<Vec<String>> {
        let prefix = format!("{}/", area.dir());
        let mut ids = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            ids.extend(page?.contents().iter().filter_map(|o| o.key()?.strip_prefix(&prefix).map(str::to_owned)));
        }
        Ok(ids)
    }

    /// Streams bytes `[start, end)` of an object.
    pub async fn read(&self, area: Area, id: &str, start: u64, end: u64) -> anyhow::Result<BlobStream> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key(area, id))
            .range(format!("bytes={start}-{}", end.saturating_sub(1)))
            .send()
            .await?;
        Ok(Box::pin(futures::stream::unfold(out.body, |mut body| async move {
            body.next().await.map(|chunk| (chunk.map_err(std::io::Error::other), body))
        })))
    }
}
