//! The CloudEvent receiver of a function (`POST /`): where the Broker delivers the events
//! a Trigger routes to it, in binary or structured mode.
//!
//! Every delivery is authenticated first: a bearer JWT (Knative's OIDC sender token) signed
//! by a key of `ARCA_EVENT_JWKS`, issued by `ARCA_EVENT_ISSUER` for `ARCA_EVENT_AUDIENCE`,
//! whose subject is one of the Broker's identities (`ARCA_EVENT_SENDERS`): in a cluster the
//! JWKS is the API server's, so any pod could otherwise mint a token for the audience.
//! Then the event must be one Arca emitted: its id is in the outbox with the same type and
//! subject (a forged event is refused before anything is claimed, so no one can take an id
//! ahead of the real event). Then the event id is claimed (with a lease, see
//! `outbox::claim_event`): a redelivery of a finished event is answered 202 at once, one
//! another replica works on is answered 429 (the Broker retries later), and the handlers
//! run while the claim is renewed. The answer is 202 with an empty body only once the work
//! is durable; any failure is a 5xx, and the Broker's redelivery is safe because handlers
//! are idempotent. Every delivery is audited (refusals within the per-address budget of
//! `ARCA_ANONYMOUS_AUDIT_RATE`), naming the sender and the event.

use std::path::Path;

use axum::body::Bytes;
use axum::extract::{Extension, FromRef, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use crate::core::error::{ApiError, Code};
use crate::core::outbox::{self, Claim, Delivery};
use crate::web::access::{Actor, ActorSlot};
use crate::web::http::AuditDetails;
use crate::web::routes::FunctionRouter;
use crate::web::state::{Core, Receiver};

/// Largest CloudEvent accepted (events carry ids, not bytes).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Verifies the Broker's sender tokens.
pub struct SenderVerifier {
    keys: JwkSet,
    issuer: String,
    audience: String,
    /// Subjects allowed to send (the Broker's identities).
    senders: Vec<String>,
}

#[derive(serde::Deserialize)]
struct SenderClaims {
    #[serde(default)]
    sub: String,
}

impl SenderVerifier {
    /// From the JWKS file, the expected issuer and audience, and the allowed subjects.
    pub fn load(jwks: &Path, issuer: &str, audience: &str, senders: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(jwks)
            .map_err(|e| anyhow::anyhow!("ARCA_EVENT_JWKS: cannot read {}: {e}", jwks.display()))?;
        let keys: JwkSet =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("ARCA_EVENT_JWKS: not a JWK set: {e}"))?;
        anyhow::ensure!(!keys.keys.is_empty(), "ARCA_EVENT_JWKS: no key in {}", jwks.display());
        anyhow::ensure!(
            !senders.is_empty(),
            "ARCA_EVENT_SENDERS: required with ARCA_EVENT_JWKS (the subjects of the Broker's sender tokens)"
        );
        Ok(Self { keys, issuer: issuer.to_owned(), audience: audience.to_owned(), senders: senders.to_vec() })
    }

    /// Checks a bearer token: signed by a known key (RS256 or ES256), issuer, audience, time,
    /// and a subject of `ARCA_EVENT_SENDERS`. Returns the subject.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed sender token".to_owned())?;
        let jwk = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None if self.keys.keys.len() == 1 => self.keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| "the sender token's key is unknown".to_owned())?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "unusable key in ARCA_EVENT_JWKS".to_owned())?;
        if !matches!(header.alg, jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::ES256) {
            return Err("the sender token's algorithm is not allowed".into());
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<SenderClaims>(token, &key, &validation)
            .map_err(|e| format!("the sender token does not verify: {e}"))?
            .claims;
        if !self.senders.contains(&claims.sub) {
            return Err(format!("'{}' is not an allowed event sender", claims.sub.escape_default()));
        }
        Ok(claims.sub)
    }
}

/// Adds the receiver (`POST /`) to a function.
pub fn add<S>(router: FunctionRouter<S>) -> FunctionRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Receiver: FromRef<S>,
{
    router.internal(Method::POST, "/", route())
}

/// The receiver's method router, body-limited (the SDK reads bodies without a limit).
pub fn route<S>() -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Receiver: FromRef<S>,
{
    post(receive).layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_EVENT_BYTES))
}

/// The dead-letter sink of the Broker (`POST /dead-letters` on `ingest`): the event could
/// not be delivered; it is recorded as dead-lettered.
pub fn dead_letter_route<S>() -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Core: FromRef<S>,
    Receiver: FromRef<S>,
{
    post(dead_letter).layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_EVENT_BYTES))
}

/// Checks the sender and names it in the request's audit entry.
fn authenticate(receiver: &Receiver, headers: &HeaderMap, slot: &ActorSlot) -> Result<(), ApiError> {
    let Some(verifier) = &receiver.0.verifier else {
        return Err(ApiError::new(
            Code::InvalidEventSender,
            "this receiver accepts no events: ARCA_EVENT_JWKS, ARCA_EVENT_ISSUER, ARCA_EVENT_AUDIENCE and \
             ARCA_EVENT_SENDERS are not set",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(Code::InvalidEventSender, "deliveries need the Broker's sender token"))?;
    let sender = verifier.verify(token.trim()).map_err(|why| {
        tracing::warn!(%why, "event delivery refused");
        ApiError::new(Code::InvalidEventSender, why)
    })?;
    let _ = slot.0.set(Actor { name: sender, roles: String::new() });
    Ok(())
}

/// Refuses an event Arca did not emit: its id must be in the outbox with this type and
/// subject. Checked before anything is claimed or recorded.
async fn check_emitted(core: &Core, id: &str, event_type: &str, subject: Option<&str>) -> Result<(), ApiError> {
    let emitted = match subject {
        Some(subject) => outbox::emitted(&core.db, id, event_type, subject).await?,
        None => false,
    };
    if emitted {
        return Ok(());
    }
    tracing::warn!(event = %id.escape_default(), kind = %event_type.escape_default(), "event refused: not one Arca emitted");
    Err(ApiError::new(Code::Forbidden, "the event is not one Arca emitted (unknown id, or another type or subject)"))
}

/// What the audit entry of a delivery names: the event (clipped: the sender chose it).
fn event_details(id: &str, event_type: &str, subject: Option<&str>) -> AuditDetails {
    let clip = |s: &str| s.chars().take(200).collect::<String>();
    AuditDetails(serde_json::json!({ "event": clip(id), "type": clip(event_type), "subject": subject.map(clip) }))
}

fn parse(headers: &HeaderMap, body: Bytes) -> Result<cloudevents::Event, ApiError> {
    cloudevents::binding::http::to_event(headers, body.to_vec())
        .map_err(|e| ApiError::new(Code::InvalidEvent, format!("not a CloudEvent: {e}")))
}

async fn receive(
    State(core): State<Core>,
    State(receiver): State<Receiver>,
    Extension(slot): Extension<ActorSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(error) = authenticate(&receiver, &headers, &slot) {
        return error.into_response();
    }
    let event = match parse(&headers, body) {
        Ok(event) => event,
        Err(error) => return error.into_response(),
    };
    let Some(delivery) = Delivery::from_event(&event, 1) else {
        return ApiError::new(Code::InvalidEvent, "the event has no subject").into_response();
    };
    let details = event_details(&delivery.id, &delivery.event_type, Some(&delivery.artifact_id));
    let mut response = match handle(&core, &receiver, delivery).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(details);
    response
}

async fn handle(core: &Core, receiver: &Receiver, mut delivery: Delivery) -> Result<Response, ApiError> {
    if !receiver.0.handlers.handles(&delivery.event_type) {
        return Ok(StatusCode::ACCEPTED.into_response()); // not for this function
    }
    check_emitted(core, &delivery.id, &delivery.event_type, Some(&delivery.artifact_id)).await?;
    let lease = receiver.0.lease;
    match outbox::claim_event(&core.db, &delivery.id, &core.instance, lease).await? {
        Claim::Done => return Ok(StatusCode::ACCEPTED.into_response()),
        Claim::Busy { retry_after_secs } => {
            return Err(ApiError::too_many(Code::Busy, "another replica is working on this event", retry_after_secs));
        }
        Claim::Acquired { attempt } => delivery.attempt = attempt,
    }
    let renew = || outbox::renew_event(&core.db, &delivery.id, &core.instance, lease);
    let result = outbox::while_renewing(lease, renew, receiver.0.handlers.run(&delivery)).await;
    outbox::finish_event(&core.db, &delivery.id, &core.instance, result.is_ok()).await?;
    match result {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(e) => {
            tracing::warn!(event = %delivery.id, kind = %delivery.event_type, attempt = delivery.attempt,
                error = format!("{e:#}"), "event handler failed; the Broker will retry");
            Err(ApiError::internal(format_args!("handling event {}: {e:#}", delivery.id)))
        }
    }
}

async fn dead_letter(
    State(core): State<Core>,
    State(receiver): State<Receiver>,
    Extension(slot): Extension<ActorSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use cloudevents::AttributesReader;
    if let Err(error) = authenticate(&receiver, &headers, &slot) {
        return error.into_response();
    }
    let event = match parse(&headers, body) {
        Ok(event) => event,
        Err(error) => return error.into_response(),
    };
    let details = event_details(event.id(), event.ty(), event.subject());
    let mut response = match record_dead_letter(&core, &event).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(details);
    response
}

async fn record_dead_letter(core: &Core, event: &cloudevents::Event) -> Result<(), ApiError> {
    use cloudevents::AttributesReader;
    check_emitted(core, event.id(), event.ty(), event.subject()).await?;
    let reason = match event.extension("knativeerrordata").or_else(|| event.extension("knativeerrorcode")) {
        Some(value) => format!("the Broker gave up: {value}"),
        None => "the Broker gave up delivering it".to_owned(),
    };
    if outbox::record_broker_dead_letter(&core.db, event.id(), &reason).await? {
        core.metrics.dead_letters.inc();
        tracing::error!(event = %event.id(), kind = %event.ty(), %reason, "event dead-lettered by the Broker");
    }
    Ok(())
}
