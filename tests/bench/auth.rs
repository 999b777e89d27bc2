//! Issue 3 figures: login p50 (bcrypt-bound) and `GET /api/auth/me` p50/p99 at 50
//! concurrent clients, with and without audit writing, in one run.

use std::time::{Duration, Instant};

use crate::server::{quantile_ms, Server};

const CLIENTS: usize = 50;
const MEASURE: Duration = Duration::from_secs(8);

pub async fn run(arca: &str) -> anyhow::Result<()> {
    println!("== identity: login and GET /api/auth/me ({CLIENTS} concurrent clients, {} s each)", MEASURE.as_secs());
    let mut rows = Vec::new();
    // Alternate the two configurations twice so drift on the machine hits both alike.
    for round in 0..2 {
        for (label, env) in [("audit on", vec![]), ("audit off", vec![("ARCA_BENCH_NO_AUDIT", "true")])] {
            let server = Server::start(arca, &env).await?;
            let (login, me) = measure(&server).await?;
            rows.push((round, label, login, me));
        }
    }
    for (round, label, login, (p50, p99, rps)) in &rows {
        println!("round {round} {label:<10} login p50 {login:7.1} ms | /me p50 {p50:6.2} ms  p99 {p99:6.2} ms  {rps:7.0} req/s");
    }
    let avg = |label: &str, f: &dyn Fn(&(f64, f64, f64)) -> f64| {
        let v: Vec<f64> = rows.iter().filter(|r| r.1 == label).map(|r| f(&r.3)).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (on50, off50) = (avg("audit on", &|m| m.0), avg("audit off", &|m| m.0));
    let (on99, off99) = (avg("audit on", &|m| m.1), avg("audit off", &|m| m.1));
    println!(
        "audit cost on /me: p50 {on50:.2} vs {off50:.2} ms ({:+.1}%), p99 {on99:.2} vs {off99:.2} ms ({:+.1}%)  [target ≤ +10%]",
        (on50 / off50 - 1.0) * 100.0,
        (on99 / off99 - 1.0) * 100.0
    );
    Ok(())
}

async fn measure(server: &Server) -> anyhow::Result<(f64, (f64, f64, f64))> {
    let client = server.client()?;
    let mut logins = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        server.login(&client).await?;
        logins.push(started.elapsed());
    }
    logins.sort();
    let token = server.login(&client).await?;
    let url = format!("{}/api/auth/me", server.url);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token) = (server.client()?, url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Warm-up: establish the connection.
            let _ = client.get(&url).bearer_auth(&token).send().await;
            let end = Instant::now() + MEASURE;
            while Instant::now() < end {
                let started = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await;
                if response.is_ok_and(|r| r.status() == 200) {
                    latencies.push(started.elapsed());
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    all.sort();
    let rps = all.len() as f64 / MEASURE.as_secs_f64();
    Ok((quantile_ms(&logins, 0.5), (quantile_ms(&all, 0.5), quantile_ms(&all, 0.99), rps)))
}
