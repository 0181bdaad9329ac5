//! The HTTP control API, with permissive CORS for browser tests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, CACHE_CONTROL, HeaderName, HeaderValue,
};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::{MAX_DELAY, Mode, Shared, Status};

/// Chrome's Private Network Access preflight header and its answer.
const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// Serves the control API until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    if let Err(error) = axum::serve(listener, router(shared)).await {
        tracing::error!(%error, "the control API stopped");
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/cut", get(cut).post(cut))
        .route("/stall", get(stall).post(stall))
        .route("/restore", get(restore).post(restore))
        .route("/delay", get(delay).post(delay))
        .route(
            "/refuse-upgrades",
            get(refuse_upgrades).post(refuse_upgrades),
        )
        .route("/allow-upgrades", get(allow_upgrades).post(allow_upgrades))
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .with_state(shared)
}

/// Answers every preflight, and lets any origin read every answer.
async fn cors(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        let allow_headers = request
            .headers()
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        if request.headers().contains_key(REQUEST_PRIVATE_NETWORK) {
            headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        finish(&mut response);
        return response;
    }
    let mut response = next.run(request).await;
    finish(&mut response);
    response
}

fn finish(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // The mode endpoints answer GET too: no cache may replay them.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Status> {
    Json(shared.status())
}

fn switch(shared: &Shared, mode: Mode) -> Json<Status> {
    shared.set_mode(mode);
    Json(shared.status())
}

async fn cut(State(shared): State<Arc<Shared>>) -> Json<Status> {
    switch(&shared, Mode::Cut)
}

async fn stall(State(shared): State<Arc<Shared>>) -> Json<Status> {
    switch(&shared, Mode::Stall)
}

async fn refuse_upgrades(State(shared): State<Arc<Shared>>) -> Json<Status> {
    shared.set_refuse_upgrades(true);
    Json(shared.status())
}

async fn allow_upgrades(State(shared): State<Arc<Shared>>) -> Json<Status> {
    shared.set_refuse_upgrades(false);
    Json(shared.status())
}

async fn restore(State(shared): State<Arc<Shared>>) -> Json<Status> {
    switch(&shared, Mode::Pass)
}

#[derive(Debug, Deserialize)]
struct DelayQuery {
    ms: Option<String>,
}

async fn delay(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<DelayQuery>,
) -> Result<Json<Status>, (StatusCode, String)> {
    let max_ms = MAX_DELAY.as_millis();
    let bad = || {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "expected /delay?ms=N with N a whole number of milliseconds from 0 to {max_ms}\n"
            ),
        )
    };
    let ms: u64 = query
        .ms
        .as_deref()
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if u128::from(ms) > max_ms {
        return Err(bad());
    }
    Ok(switch(&shared, Mode::Delay(Duration::from_millis(ms))))
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "unknown endpoint; try GET /status, POST /cut, /stall, /restore or /delay?ms=N\n",
    )
}
