//! Host dispatch: the first decision for every request.
//!
//! `/healthz` and `/readyz` answer on any Host. Otherwise the Host header is normalised;
//! admin hosts go to the control plane, every other Host is resolved to an app (cached) and
//! goes to the data plane with the [`ResolvedApp`] attached. A missing or garbage Host is a
//! 400, an unknown one a 404: neither reaches a handler.

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use picloud_core::host::Host;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Clone)]
pub struct Planes {
    pub state: AppState,
    pub health: Router,
    pub admin: Router,
    pub data: Router,
}

pub async fn dispatch(State(planes): State<Planes>, mut req: Request) -> Response {
    let path = req.uri().path();
    let target = if path == "/healthz" || path == "/readyz" {
        planes.health
    } else {
        let host = match request_host(&req) {
            Ok(h) => h,
            Err(e) => return e.into_response(),
        };
        if planes.state.config.admin_hosts.contains(&host) {
            planes.admin
        } else {
            match planes.state.resolver.resolve(&host).await {
                Ok(Some(app)) => {
                    req.extensions_mut().insert(app);
                    planes.data
                }
                Ok(None) => {
                    return ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_host",
                        "no app answers on this host",
                    )
                    .into_response()
                }
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
    };
    match target.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The request's Host: the `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
fn request_host(req: &Request) -> Result<Host, ApiError> {
    let raw = match req.headers().get(HOST) {
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::bad_request("bad_host", "the Host header is not valid text"))?,
        None => req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .ok_or_else(|| ApiError::bad_request("bad_host", "the Host header is missing"))?,
    };
    Host::parse(raw).map_err(|e| ApiError::bad_request("bad_host", e.to_string()))
}
