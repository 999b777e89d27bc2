//! Configuration: read once from flags and environment into one typed struct, validated
//! at start-up. Every problem is reported as one line naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ipnet::IpNet;

use crate::users::Role;

/// Settings shared by `arca serve` and every function binary (flags, or `ARCA_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "ARCA_LISTEN", default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Directory for the database, keys, certificates and blobs.
    #[arg(long, env = "ARCA_DATA_DIR", default_value = "./arca-data", value_name = "DIR")]
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
    #[arg(long, env = "ARCA_METRICS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub metrics_token: Option<String>,

    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "ARCA_MAX_JSON_BYTES", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_json_bytes: usize,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "ARCA_SHUTDOWN_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub shutdown_timeout: u64,

    /// CIDRs (or addresses) of reverse proxies whose X-Forwarded-For is trusted.
    #[arg(long, env = "ARCA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net, value_name = "CIDRS")]
    pub trusted_proxies: Vec<IpNet>,

    /// CIDRs allowed to use the API at all (empty: any address).
    #[arg(long, env = "ARCA_ALLOWLIST", value_delimiter = ',', value_parser = parse_net, value_name = "CIDRS")]
    pub allowlist: Vec<IpNet>,

    /// Requests per minute per client IP, and per user or token.
    #[arg(long, env = "ARCA_RATE_LIMIT", default_value_t = 1200, value_name = "N")]
    pub rate_limit: u32,

    /// Login attempts per minute per client IP.
    #[arg(long, env = "ARCA_LOGIN_RATE_LIMIT", default_value_t = 30, value_name = "N")]
    pub login_rate_limit: u32,

    /// Failed logins before an account is locked (an IP after four times as many).
    #[arg(long, env = "ARCA_LOCKOUT_THRESHOLD", default_value_t = 5, value_name = "N")]
    pub lockout_threshold: u32,

    /// Longest lifetime of an API token, in days.
    #[arg(long, env = "ARCA_TOKEN_MAX_DAYS", default_value_t = 90, value_name = "DAYS")]
    pub token_max_days: u32,

    /// Lifetime of a refresh token (sign-in session), in hours.
    #[arg(long, env = "ARCA_REFRESH_TTL_HOURS", default_value_t = 168, value_name = "HOURS")]
    pub refresh_ttl_hours: u32,

    /// Largest artifact accepted, in bytes.
    #[arg(long, env = "ARCA_MAX_ARTIFACT_BYTES", default_value_t = 5 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub max_artifact_bytes: u64,

    /// Seconds an upload URL stays valid.
    #[arg(long, env = "ARCA_UPLOAD_URL_TTL", default_value_t = 900, value_name = "SECS")]
    pub upload_url_ttl: u64,

    /// Benchmarks only: do not write the audit log (to measure its cost). Never in production.
    #[arg(long, env = "ARCA_BENCH_NO_AUDIT", hide = true)]
    pub bench_no_audit: bool,

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
    pub network: NetworkPolicy,
    pub limits: Limits,
    /// False only in benchmarks that measure the audit log's cost.
    pub audit_enabled: bool,
    pub max_artifact_bytes: u64,
    pub upload_url_ttl: Duration,
    /// Master key (`ARCA_MASTER_KEY`, base64); else `<data-dir>/master.key`.
    pub master_key: Option<String>,
}

/// Who may connect, and through which proxies.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub trusted_proxies: Vec<IpNet>,
    /// Empty: any address.
    pub allowlist: Vec<IpNet>,
    /// Per-role allowlists (`ARCA_ALLOWLIST_ADMIN`, …): a caller holding the role must
    /// come from one of these networks.
    pub role_allowlists: Vec<(Role, Vec<IpNet>)>,
}

/// Rate limits, lockout and token lifetimes.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rate_per_minute: u32,
    pub login_rate_per_minute: u32,
    pub lockout_threshold: u32,
    pub token_max_days: u32,
    pub refresh_ttl: Duration,
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
        let admin_password = std::env::var("ARCA_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
        if let Some(p) = &admin_password {
            if p.chars().count() < MIN_PASSWORD_LEN {
                bail!("ARCA_ADMIN_PASSWORD: must be at least {MIN_PASSWORD_LEN} characters");
            }
        }
        if args.metrics_token.as_deref().is_some_and(|t| t.len() < 16) {
            bail!("ARCA_METRICS_TOKEN: must be at least 16 characters");
        }
        if args.max_artifact_bytes == 0 {
            bail!("ARCA_MAX_ARTIFACT_BYTES: must be at least 1");
        }
        if args.max_json_bytes < 1024 {
            bail!("--max-json-bytes (ARCA_MAX_JSON_BYTES): must be at least 1024");
        }
        let mut role_allowlists = Vec::new();
        for role in Role::ALL {
            let var = format!("ARCA_ALLOWLIST_{}", role.as_str().to_uppercase());
            if let Ok(value) = std::env::var(&var) {
                let nets = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| parse_net(s.trim()).map_err(|e| anyhow::anyhow!("{var}: {e}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                role_allowlists.push((role, nets));
            }
        }
        for (name, value) in [
            ("ARCA_RATE_LIMIT", args.rate_limit),
            ("ARCA_LOGIN_RATE_LIMIT", args.login_rate_limit),
            ("ARCA_LOCKOUT_THRESHOLD", args.lockout_threshold),
            ("ARCA_TOKEN_MAX_DAYS", args.token_max_days),
            ("ARCA_REFRESH_TTL_HOURS", args.refresh_ttl_hours),
        ] {
            if value == 0 {
                bail!("{name}: must be at least 1");
            }
        }
        prepare_data_dir(&args.data_dir)?;
        Ok(Self {
            audit_enabled: !args.bench_no_audit,
            max_artifact_bytes: args.max_artifact_bytes,
            upload_url_ttl: Duration::from_secs(args.upload_url_ttl),
            master_key: std::env::var("ARCA_MASTER_KEY").ok().filter(|k| !k.is_empty()),
            network: NetworkPolicy {
                trusted_proxies: args.trusted_proxies,
                allowlist: args.allowlist,
                role_allowlists,
            },
            limits: Limits {
                rate_per_minute: args.rate_limit,
                login_rate_per_minute: args.login_rate_limit,
                lockout_threshold: args.lockout_threshold,
                token_max_days: args.token_max_days,
                refresh_ttl: Duration::from_secs(u64::from(args.refresh_ttl_hours) * 3600),
            },
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

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not a CIDR or IP address"))
}

fn database_config(url: Option<&str>, data_dir: &Path) -> anyhow::Result<DatabaseConfig> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(DatabaseConfig::Sqlite { path: data_dir.join("arca.db") });
    };
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(DatabaseConfig::Postgres { url: url.to_owned() }),
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            if path.is_empty() {
                bail!("DATABASE_URL: sqlite:// needs a file path");
            }
            Ok(DatabaseConfig::Sqlite { path: PathBuf::from(path) })
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
        assert_eq!(database_config(None, dir).unwrap(), DatabaseConfig::Sqlite { path: dir.join("arca.db") });
        assert!(matches!(
            database_config(Some("postgresql://u:p@h/db"), dir).unwrap(),
            DatabaseConfig::Postgres { .. }
        ));
        let err = database_config(Some("mysql://root:hunter2@h/db"), dir).unwrap_err().to_string();
        assert!(err.contains("unknown scheme 'mysql'"), "{err}");
        assert!(!err.contains("hunter2"), "the URL's secret must not be echoed: {err}");
    }
}
