//! Script endpoints: a request on an app's Host that matches one of its routes runs the
//! route's script with a `request` map, and the script's result becomes the response
//! (DESIGN §8, §13).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use picloud_core::script::{match_route, Route};
use picloud_core::StoreError;
use picloud_dispatch::InvokeError;
use picloud_runtime::{into_http_response, Body as ScriptBody, Input};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::host::ResolvedApp;
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::AppInfo;

/// The app's route table, loaded once for all concurrent callers.
async fn routes(state: &AppState, app: &ResolvedApp) -> Result<Arc<Vec<Route>>, ApiError> {
    let load = async { state.store.list_routes(&app.id).await.map(Arc::new) };
    Ok(state
        .routes
        .try_get_with(app.id.clone(), load)
        .await
        .map_err(StoreError::from)?)
}

/// The data plane's fallback: a route's script, `GET /` describing the app when no route
/// claims it, else 404.
pub async fn serve(
    State(state): State<AppState>,
    Extension(app): Extension<ResolvedApp>,
    req: Request,
) -> Response {
    let mut label = "unmatched";
    let mut res = match handle(&state, &app, req, &mut label).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    crate::metrics::label_response(&mut res, label);
    res
}

/// Asks [`handle`] for the record of the run a request causes (the dashboard's "try it"):
/// put one in the request's extensions.
#[derive(Clone, Default)]
pub(crate) struct RunCapture(pub Arc<std::sync::OnceLock<picloud_core::dispatch::Invocation>>);

/// `label` is set to the metrics route label once the request is matched.
pub(crate) async fn handle(
    state: &AppState,
    app: &ResolvedApp,
    req: Request,
    label: &mut &'static str,
) -> Result<Response, ApiError> {
    let table = routes(state, app).await?;
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let decoded: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map_or_else(|_| s.to_owned(), |d| d.into_owned())
        })
        .collect();
    let joined = decoded.join("/");
    let Some((route, params)) = match_route(&table, &method, &joined) else {
        let head = method == "HEAD";
        if head || method == "GET" {
            if let Some(res) =
                crate::static_site::serve(state, app, &joined, req.headers(), head).await?
            {
                *label = "app:static";
                return Ok(res);
            }
        }
        if path == "/" && (method == "GET" || method == "HEAD") {
            let info = ApiJson(AppInfo {
                app: app.slug.to_string(),
                version: env!("CARGO_PKG_VERSION"),
            });
            *label = "app:/";
            return Ok(info.into_response());
        }
        let admin_host = state
            .config
            .admin_hosts
            .first()
            .map_or_else(|| "localhost".to_owned(), ToString::to_string);
        return Err(
            crate::wrong_plane::on_app_host(&path, req.headers(), &admin_host)
                .unwrap_or_else(|| ApiError::not_found("route")),
        );
    };
    *label = "app:script";
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a request body may be at most {limit} bytes"),
            ))
        }
    };
    let request = request_map(&parts, &path, params, &bytes);
    let source = format!("route:{} {}", route.method.as_str(), route.path.as_str());
    let ran = state
        .invoker
        .invoke(
            &app.id,
            &route.script,
            source,
            Input::Request(request),
            None,
            Some(state.invoker.endpoint_wait()),
        )
        .await;
    let ran = match ran {
        Ok(r) => {
            if let Some(capture) = parts.extensions.get::<RunCapture>() {
                let _ = capture.0.set(r.record.clone());
            }
            r
        }
        Err(InvokeError::Busy) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many requests running for this app; try again",
            ))
        }
        Err(InvokeError::Store(e)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(app = %app.slug, error = %e, "endpoint not runnable");
            return Err(script_failed());
        }
    };
    let value = match ran.outcome.result {
        Ok(v) => v,
        // The script stopped on a write the full disk refused: say so, as a publish would.
        Err(_) if ran.storage_full => return Err(ApiError::storage_full()),
        Err(_) => return Err(script_failed()),
    };
    let resp = into_http_response(value).map_err(|_| script_failed())?;
    let mut builder = Response::builder().status(resp.status);
    let mut has_type = false;
    for (k, v) in &resp.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) else {
            return Err(script_failed());
        };
        has_type |= name == header::CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    let body = match resp.body {
        ScriptBody::Empty => Body::empty(),
        ScriptBody::Text(t) => {
            if !has_type {
                builder = builder.header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
            }
            Body::from(t)
        }
        ScriptBody::Json(v) => {
            if !has_type {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            Body::from(v.to_string())
        }
    };
    builder.body(body).map_err(|_| script_failed())
}

/// What a client sees when a script fails: nothing of the script's internals. The error
/// and the script's log lines are in the app's logs.
fn script_failed() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "script_error",
        "the endpoint's script failed; its error is in the app's logs",
    )
}

fn request_map(
    parts: &axum::http::request::Parts,
    path: &str,
    params: Vec<(String, String)>,
    body: &[u8],
) -> Value {
    let mut query = Map::new();
    if let Some(q) = parts.uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            query.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        if let Ok(v) = v.to_str() {
            // Repeated headers join with ", " as HTTP allows.
            let entry = headers
                .entry(k.as_str().to_owned())
                .or_insert(Value::String(String::new()));
            if let Value::String(s) = entry {
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str(v);
            }
        }
    }
    let text = std::str::from_utf8(body).ok();
    let json = text
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .unwrap_or(Value::Null);
    serde_json::json!({
        "method": parts.method.as_str(),
        "path": path,
        "params": params.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<Map<_, _>>(),
        "query": query,
        "headers": headers,
        "body": text.unwrap_or_default(),
        "json": json,
    })
}
