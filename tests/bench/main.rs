//! `make bench`: Arca's performance figures, each next to a baseline measured in the same
//! run. Usage: arca-bench ARCA_BINARY [artifacts|s3|scan|auth]…
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifacts;
mod auth;
mod s3;
mod scan;
mod server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let arca = args.next().expect("usage: arca-bench ARCA_BINARY [suite…]");
    let suites: Vec<String> = args.collect();
    let wants = |name: &str| suites.is_empty() || suites.iter().any(|s| s == name);
    if wants("artifacts") {
        artifacts::run(&arca).await?;
    }
    if wants("s3") {
        s3::run(&arca).await?;
    }
    if wants("scan") {
        scan::run(&arca).await?;
    }
    if wants("auth") {
        auth::run(&arca).await?;
    }
    Ok(())
}
