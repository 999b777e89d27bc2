//! Configuration: read once from flags and environment into one typed struct, validated
//! at start-up. Every problem is reported as one line naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// Settings shared by `arca serve` and every function binary (flags, or `ARCA_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "ARCA_LISTEN",
        default_value = "127.0.0.1:8443",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Directory for the database, keys, certificates and blobs.
    #[arg(
        long,
        env = "ARCA_DATA_DIR",
        default_value = "./arca-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Metadata database: postgres://… for PostgreSQL; unset for SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// PEM certificate chain for HTTPS (default: a self-signed certificate in the data dir).
    #[arg(long, env = "ARCA_TLS_CERT", requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "ARCA_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP instead of HTTPS. Only for running behind a TLS-terminating
    /// reverse proxy on the same host or network: never expose it directly.
    #[arg(long, env = "ARCA_PLAIN_HTTP")]
    pub plain_http: bool,

    /// Bearer token that Prometheus presents to scrape /api/metrics.
    #[arg(
        long,
        env = "ARCA_METRICS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub metrics_token: Option<String>,

    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "ARCA_MAX_JSON_BYTES", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_json_bytes: usize,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "ARCA_SHUTDOWN_TIMEOUT",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub shutdown_timeout: u64,

    /// Log filter (tracing syntax), e.g. `info` or `arca=debug`.
    #[arg(long, env = "ARCA_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Where metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Sqlite {
        path: PathBuf,
    },
    /// The URL may hold a password: never log or print it.
    Postgres {
        url: String,
    },
}

/// TLS material for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfig {
    /// No TLS (behind a terminating proxy, or inside a Knative pod).
    Off,
    /// Certificate and key in the data dir, generated on first start.
    SelfSigned,
    /// Operator-provided PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// The validated configuration of one Arca process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub tls: TlsConfig,
    pub metrics_token: Option<String>,
    pub max_json_bytes: usize,
    pub shutdown_timeout: Duration,
    /// Initial admin password (`ARCA_ADMIN_PASSWORD`), used only when the admin is created.
    pub admin_password: Option<String>,
}

/// Minimum length of any password Arca accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

impl Config {
    /// Validates the arguments and prepares the data dir (created 0700 if missing).
    pub fn from_args(args: ServerArgs) -> anyhow::Result<Self> {
        let database = database_config(args.database_url.as_deref(), &args.data_dir)?;
        let tls = match (args.plain_http, args.tls_cert, args.tls_key) {
            (true, _, _) => TlsConfig::Off,
            (false, Some(cert), Some(key)) => TlsConfig::Files { cert, key },
            _ => TlsConfig::SelfSigned,
        };
        let admin_password = std::env::var("ARCA_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        if let Some(p) = &admin_password {
            if p.chars().count() < MIN_PASSWORD_LEN {
                bail!("ARCA_ADMIN_PASSWORD: must be at least {MIN_PASSWORD_LEN} characters");
            }
        }
        if args.metrics_token.as_deref().is_some_and(|t| t.len() < 16) {
            bail!("ARCA_METRICS_TOKEN: must be at least 16 characters");
        }
        if args.max_json_bytes < 1024 {
            bail!("--max-json-bytes (ARCA_MAX_JSON_BYTES): must be at least 1024");
        }
        prepare_data_dir(&args.data_dir)?;
        Ok(Self {
            listen: args.listen,
            data_dir: args.data_dir,
            database,
            tls,
            metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
            max_json_bytes: args.max_json_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            admin_password,
        })
    }

    /// Directory of encrypted blobs.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}

fn database_config(url: Option<&str>, data_dir: &Path) -> anyhow::Result<DatabaseConfig> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(DatabaseConfig::Sqlite {
            path: data_dir.join("arca.db"),
        });
    };
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(DatabaseConfig::Postgres {
            url: url.to_owned(),
        }),
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            if path.is_empty() {
                bail!("DATABASE_URL: sqlite:// needs a file path");
            }
            Ok(DatabaseConfig::Sqlite {
                path: PathBuf::from(path),
            })
        }
        "" => bail!("DATABASE_URL: not a URL (expected postgres://… or sqlite://…)"),
        // Only the scheme is echoed: the rest may hold credentials.
        other => {
            bail!("DATABASE_URL: unknown scheme '{other}' (expected postgres:// or sqlite://)")
        }
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    std::fs::create_dir_all(dir).with_context(|| format!("data dir {shown}: cannot create"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("data dir {shown}: cannot set permissions"))?;
    }
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("data dir {shown}: not writable"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_schemes() {
        let dir = Path::new("/d");
        assert_eq!(
            database_config(None, dir).unwrap(),
            DatabaseConfig::Sqlite {
                path: dir.join("arca.db")
            }
        );
        assert!(matches!(
            database_config(Some("postgresql://u:p@h/db"), dir).unwrap(),
            DatabaseConfig::Postgres { .. }
        ));
        let err = database_config(Some("mysql://root:hunter2@h/db"), dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scheme 'mysql'"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the URL's secret must not be echoed: {err}"
        );
    }
}
