//! Issue 4 figures (local store): uploading 1 GiB over HTTPS vs `openssl dgst -sha256` of
//! the same file, and downloading it vs nginx serving the same file over HTTPS.

use std::process::{Command, Stdio};
use std::time::Instant;

use futures::StreamExt;

use crate::server::Server;

const SIZE: u64 = 1 << 30;

fn client(server: &Server) -> anyhow::Result<reqwest::Client> {
    let cert = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert)?)
        .tls_built_in_root_certs(false)
        .build()?)
}

async fn drain(response: reqwest::Response) -> anyhow::Result<u64> {
    anyhow::ensure!(response.status().is_success(), "status {}", response.status());
    let mut total = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        total += chunk?.len() as u64;
    }
    Ok(total)
}

pub async fn run(arca: &str) -> anyhow::Result<()> {
    println!("== artifacts (local store): 1 GiB over HTTPS");
    let server = Server::start(arca, &[]).await?;
    let file = server.dir.path().join("one-gib.bin");
    let status = Command::new("head")
        .args(["-c", &SIZE.to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(&file)?)
        .status()?;
    anyhow::ensure!(status.success(), "cannot create the test file");

    let started = Instant::now();
    let out = Command::new("openssl").arg("dgst").arg("-sha256").arg(&file).output()?;
    let openssl = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let sha256 = text.rsplit("= ").next().unwrap_or("").trim().to_owned();

    let http = client(&server)?;
    let cert = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let api = arca_client::Client::builder(&server.url).pin_pem(cert).http1_only().build()?;
    api.login("admin", crate::server::PASSWORD).await?;
    let declared = arca_client::NewArtifact {
        name: "bench".to_owned(),
        version: "1".to_owned(),
        filename: "bench.bin".to_owned(),
        size: SIZE,
        sha256,
        labels: Default::default(),
        description: String::new(),
    };
    let created = api.create_artifact(&declared).await?;
    let id = created.artifact.id;
    let source = arca_client::Source::File(file.clone());
    let started = Instant::now();
    api.upload(&id, &created.upload, &source, SIZE, &Default::default()).await?;
    let upload = started.elapsed().as_secs_f64();
    println!(
        "upload 1 GiB: arca {upload:.2} s ({:.0} MiB/s) vs openssl dgst -sha256 {openssl:.2} s -> {:.2}x  [target <= 2x]",
        1024.0 / upload,
        upload / openssl
    );
    // Arca's own client (what `arca push` uses: HTTP/2 when offered) over each protocol,
    // alternated three times.
    let api_h2 = arca_client::Client::builder(&server.url)
        .pin_pem(std::fs::read(server.dir.path().join("data/tls/cert.pem"))?)
        .build()?;
    api_h2.login("admin", crate::server::PASSWORD).await?;
    let version = api_h2.request(&arca_client::endpoints::ME, &[]).send().await?.version();
    anyhow::ensure!(version == reqwest::Version::HTTP_2, "Arca's client spoke {version:?}, not HTTP/2");
    let mut by_client = [Vec::new(), Vec::new()];
    for round in 0..3 {
        for (i, client) in [&api, &api_h2].into_iter().enumerate() {
            let declared = arca_client::NewArtifact { version: format!("client-{round}-{i}"), ..declared.clone() };
            let created = client.create_artifact(&declared).await?;
            let started = Instant::now();
            client.upload(&created.artifact.id, &created.upload, &source, SIZE, &Default::default()).await?;
            by_client[i].push(started.elapsed().as_secs_f64());
        }
    }
    let (c1, c2) = (best(&by_client[0]), best(&by_client[1]));
    println!(
        "upload 1 GiB with Arca's client: HTTP/1.1 {c1:.2} s ({:.0} MiB/s), HTTP/2 {c2:.2} s ({:.0} MiB/s) -> HTTP/2 at {:.2}x HTTP/1.1 throughput  [target >= 0.9x]",
        1024.0 / c1,
        1024.0 / c2,
        c1 / c2
    );

    // The same upload with curl -T, over HTTP/1.1 and over HTTP/2 (ALPN), alternated three
    // times; and the same client PUTting the same file to nginx (WebDAV PUT to disk, HTTP/2
    // on the same port): how much of the HTTP/2 cost is the client's and the machine's.
    let nginx = Nginx::start(&server, &file)?;
    let cacert = server.dir.path().join("data/tls/cert.pem");
    let mut by_protocol = [Vec::new(), Vec::new()];
    let mut nginx_by_protocol = [Vec::new(), Vec::new()];
    for round in 0..3 {
        for (i, protocol) in ["--http1.1", "--http2"].into_iter().enumerate() {
            let declared = arca_client::NewArtifact { version: format!("curl-{round}-{i}"), ..declared.clone() };
            let target = api.create_artifact(&declared).await?.upload;
            by_protocol[i].push(curl_put(&target.url, &target.headers, &file, protocol, &cacert)?);
            nginx_by_protocol[i].push(curl_put(&nginx.put_url, &Default::default(), &file, protocol, &cacert)?);
        }
    }
    let (h1, h2) = (best(&by_protocol[0]), best(&by_protocol[1]));
    let (n1, n2) = (best(&nginx_by_protocol[0]), best(&nginx_by_protocol[1]));
    println!(
        "upload 1 GiB with curl -T: HTTP/1.1 {h1:.2} s ({:.0} MiB/s), HTTP/2 {h2:.2} s ({:.0} MiB/s) -> HTTP/2 at {:.2}x HTTP/1.1 throughput, HTTP/1.1 at {:.2}x openssl dgst time  [target HTTP/2 >= 0.9x]",
        1024.0 / h1,
        1024.0 / h2,
        h1 / h2,
        h1 / openssl
    );
    println!(
        "  baseline, the same curl to nginx (PUT to disk): HTTP/1.1 {n1:.2} s, HTTP/2 {n2:.2} s -> HTTP/2 at {:.2}x HTTP/1.1; Arca HTTP/1.1 at {:.2}x nginx throughput, HTTP/2 at {:.2}x",
        n1 / n2,
        n1 / h1,
        n2 / h2
    );

    api.complete(&id).await?;
    let done = api.wait_final(&id, std::time::Duration::from_secs(3600), None).await?;
    anyhow::ensure!(done.status == arca_client::Status::Approved, "bench artifact is {}", done.status);

    let mut arca_times = Vec::new();
    let mut nginx_times = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let n = drain(api.request(&arca_client::endpoints::DOWNLOAD, &[&id]).send().await?).await?;
        anyhow::ensure!(n == SIZE);
        arca_times.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let n = drain(http.get(&nginx.url).send().await?).await?;
        anyhow::ensure!(n == SIZE);
        nginx_times.push(started.elapsed().as_secs_f64());
    }
    let (a, n) = (best(&arca_times), best(&nginx_times));
    println!(
        "download 1 GiB: arca {a:.2} s ({:.0} MiB/s, decrypting) vs nginx {n:.2} s ({:.0} MiB/s) -> {:.2}x nginx throughput  [target >= 0.8x]",
        1024.0 / a,
        1024.0 / n,
        n / a
    );
    Ok(())
}

fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

/// `curl -T FILE` to `url` with `headers`, forcing `protocol`; the seconds it took.
fn curl_put(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    file: &std::path::Path,
    protocol: &str,
    cacert: &std::path::Path,
) -> anyhow::Result<f64> {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-f", "-o", "/dev/null", "-w", "%{http_version}", protocol, "--cacert"])
        .arg(cacert)
        .arg("-T")
        .arg(file);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(url);
    let started = Instant::now();
    let out = command.output()?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "curl {protocol}: {}", String::from_utf8_lossy(&out.stderr));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let wanted = if protocol == "--http2" { "2" } else { "1.1" };
    anyhow::ensure!(version == wanted, "curl {protocol} spoke HTTP/{version}");
    Ok(elapsed)
}

/// nginx serving one file over HTTPS with Arca's certificate, and taking PUTs (WebDAV,
/// written to disk) at `put_url`, over HTTP/1.1 or HTTP/2.
struct Nginx {
    child: std::process::Child,
    url: String,
    put_url: String,
}

impl Nginx {
    fn start(server: &Server, file: &std::path::Path) -> anyhow::Result<Self> {
        let dir = server.dir.path().join("nginx");
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::create_dir_all(dir.join("put"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let tls = server.dir.path().join("data/tls");
        let root = file.parent().unwrap_or(std::path::Path::new("/"));
        // Workers as the user running the bench (the directive is ignored when not root),
        // so that they can write the PUT bodies into its temporary directory.
        let user = Command::new("id").arg("-un").output()?;
        let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
        let conf = format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
             user {user};\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; sendfile on; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen 127.0.0.1:{port} ssl http2; ssl_protocols TLSv1.2 TLSv1.3;\n\
                 ssl_certificate {t}/cert.pem; ssl_certificate_key {t}/key.pem; root {r};\n\
                 location /put/ {{ root {d}; dav_methods PUT; client_max_body_size 0; }} }} }}\n",
            d = dir.display(),
            t = tls.display(),
            r = root.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c", &dir.join("nginx.conf").display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(Self {
            child,
            url: format!("https://127.0.0.1:{port}/{name}"),
            put_url: format!("https://127.0.0.1:{port}/put/upload.bin"),
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
