//! The `ingest` function: MinIO's bucket notifications (`POST /storage-events`), `deleted`
//! CloudEvents (`POST /`: the blob is removed), the Broker's dead letters. Background: the
//! outbox relay to the Broker (`K_SINK`), the reconciler (leased: interrupted uploads, stuck
//! artifacts re-driven, orphaned blobs), the outbox gauge.
use std::time::Duration;

use shared::web::function::{self, Startup};
use shared::web::state::{Blobs, Core, IngestToken, Receiver};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Ingest {
    core: Core,
    probes: Probes,
    blobs: Blobs,
    token: IngestToken,
    receiver: Receiver,
}

fn main() -> std::process::ExitCode {
    function::main("ingest", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let blobs = startup.blobs().await?;
        let handlers = shared::features::ingest::handlers(core.clone(), blobs.clone());
        let sink = startup.config.events.sink.clone();
        let state = Ingest {
            probes: startup.probes(&core, Some(&blobs), None),
            token: startup.ingest_token()?,
            receiver: startup.receiver(handlers)?,
            blobs: blobs.clone(),
            core: core.clone(),
        };
        let routes = shared::web::receiver::add(shared::features::ingest::router());
        let delivery = startup.delivery(&core);
        let mut running = startup.serve(&core, routes, state);
        match sink {
            Some(sink) => {
                let (db, bus, dead) = (core.db.clone(), core.bus.clone(), core.metrics.dead_letters.clone());
                running = running.task(shared::core::outbox::run_relay(db, bus, sink, delivery, dead));
            }
            None => tracing::warn!("K_SINK is not set: outbox events are not published (no Broker)"),
        }
        let (c1, c2, c3, c4, b3) = (core.clone(), core.clone(), core.clone(), core.clone(), blobs.clone());
        Ok(running
            .leased("upload-leases", function::lease_check_interval(&core), move || {
                let (core, blobs) = (c3.clone(), b3.clone());
                async move { shared::features::ingest::reset_expired_uploads(&core, &blobs).await.map(|_| ()) }
            })
            .leased("redrive", shared::features::ingest::redrive_interval(&core), move || {
                let core = c4.clone();
                async move { shared::features::ingest::redrive(&core).await.map(|_| ()) }
            })
            .leased("reconcile", Duration::from_secs(300), move || {
                let (core, blobs) = (c1.clone(), blobs.clone());
                async move { shared::features::ingest::sweep(&core, &blobs).await.map(|_| ()) }
            })
            .leased("outbox-depth", Duration::from_secs(15), move || {
                let core = c2.clone();
                async move { shared::features::ingest::measure_outbox(&core).await }
            }))
    })
}
