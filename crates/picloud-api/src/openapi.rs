//! The OpenAPI document. Paths come from the same `routes!` registrations that build the
//! router (utoipa-axum), so a route cannot exist without its documentation;
//! `tests/openapi.rs` keeps the committed `docs/openapi.json` equal to what the code says.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PiCloud admin API",
        description = "Control plane of PiCloud. Every call sends `Authorization: Bearer <admin key>`. \
Errors are `{\"error\":{\"code\",\"message\"}}`.",
    ),
    modifiers(&AdminKeyScheme),
    // The stats stream's events' data: named here, as no answer's body refers to them.
    components(schemas(crate::routes::stats::StatsHistory, crate::routes::stats::StatsFrame)),
    tags(
        (name = "apps", description = "Apps (tenants)"),
        (name = "domains", description = "Hosts an app answers on"),
        (name = "admin-keys", description = "Control-plane credentials"),
        (name = "topics", description = "Topics, durable and ephemeral publish"),
        (name = "tokens", description = "Subscriber tokens (HS256 JWT)"),
        (name = "secrets", description = "App secrets that sign subscriber tokens"),
        (name = "health", description = "Liveness and readiness, on every Host"),
        (name = "scripts", description = "Scripts, routes, triggers, env, runtime settings, dead letters, logs"),
        (name = "static", description = "An app's static site, served on its Host"),
        (name = "backups", description = "Online backups of a SQLite server (docs/operations.md)"),
    )
)]
pub struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin key, `pk_<id>_<secret>`"))
                    .build(),
            ),
        );
    }
}

/// The document as served at `/api/v1/openapi.json` and committed at `docs/openapi.json`.
pub fn document_json() -> String {
    let (_, mut doc) = crate::router::api_routes().split_for_parts();
    plain_wildcards(&mut doc);
    document_bad_requests(&mut doc);
    empty_files_allowed(&mut doc);
    let mut json = doc.to_pretty_json().expect("serialisable OpenAPI document");
    json.push('\n');
    json
}

/// axum names a rest-of-path parameter `{*path}`; OpenAPI's template is `{path}` (the
/// parameter's description says it may hold `/`).
fn plain_wildcards(doc: &mut utoipa::openapi::OpenApi) {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(k, v)| (k.replace("{*", "{"), v))
        .collect();
}

/// Every operation that reads a body, a query or a path parameter can be sent one it
/// cannot parse (not JSON, an unknown or mistyped query field, a path segment that is not
/// UTF-8 or not a number): axum's extractors refuse those with `400` before the handler
/// runs; a JSON body or query of the wrong shape or range gets `422`. The document says so
/// once, here, rather than on each route.
fn document_bad_requests(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
            let has_json_body = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            let parses_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let answers = [
                (
                    parses_input,
                    "400",
                    "Malformed request: a body that is not JSON, an unknown or mistyped query \
                     parameter, or a path segment of the wrong type",
                ),
                (
                    has_query || has_json_body,
                    "422",
                    "A JSON body of the wrong shape (`invalid_body`), or a value out of its \
                     range (`invalid_field`)",
                ),
            ];
            for (applies, status, description) in answers {
                if !applies {
                    continue;
                }
                op.responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{RefOr, ResponseBuilder};
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(
                        utoipa::openapi::Ref::from_schema_name("ErrorBody"),
                    )))
                    .build(),
            )
            .build(),
    )
}

/// A static file may be empty, so its `PUT` may come without a body: the body is optional
/// (utoipa's `request_body` attribute has no way to say so).
fn empty_files_allowed(doc: &mut utoipa::openapi::OpenApi) {
    let body = doc
        .paths
        .paths
        .values_mut()
        .filter_map(|item| item.put.as_mut())
        .filter(|op| op.operation_id.as_deref() == Some("put_static_file"))
        .find_map(|op| op.request_body.as_mut());
    if let Some(body) = body {
        body.required = Some(utoipa::openapi::Required::False);
    }
}
