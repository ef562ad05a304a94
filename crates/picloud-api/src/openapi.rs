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
    // The stats stream's first event: named here, as no answer's body refers to it.
    components(schemas(crate::routes::stats::StatsHistory)),
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
