//! Admin authentication and authorisation.
//!
//! [`AdminAuth`] extracts and verifies the bearer key (401 on any failure, one body for all).
//! Handlers then call [`AdminAuth::require`] for a capability (403) and
//! [`AdminAuth::app`] to resolve `{app}`. An app-bound key asking for another app gets the
//! same 404 as for an app that does not exist, so keys cannot probe for other tenants.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use picloud_core::admin_key::{self, AdminKey};
use picloud_core::app::{App, Slug};
use picloud_core::capability::Capability;
use picloud_core::ids::{looks_like_id, AppId};
use picloud_core::StoreError;
use std::sync::atomic::Ordering;

use crate::error::{ApiError, ApiResult};
use crate::lookup_cache::{get_or_load, CachedKey};
use crate::state::AppState;

/// A header value as text, as `HeaderValue::to_str` reads it (visible ASCII and tabs).
/// Folded without an early exit, so that it compiles to a vector loop: it runs on every
/// admin request, over a ~70-byte key.
fn visible_ascii(v: &[u8]) -> Option<&str> {
    v.iter()
        .fold(true, |ok, &b| {
            ok & (b == b'\t' || (0x20..0x7f).contains(&b))
        })
        .then(|| std::str::from_utf8(v).ok())
        .flatten()
}

/// The key id and secret of a bearer `Authorization` value; 401 for anything else.
fn presented(value: Option<&[u8]>) -> ApiResult<(&str, &str)> {
    let presented = value
        .and_then(visible_ascii)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    admin_key::parse(presented).ok_or_else(ApiError::unauthorized)
}

pub struct AdminAuth {
    pub key: SharedKey,
    state: AppState,
}

/// The authenticated key, shared with the key cache rather than copied out of it (a copy
/// was four allocations per request: id, label, capabilities, app binding).
pub struct SharedKey(Arc<CachedKey>);

impl std::ops::Deref for SharedKey {
    type Target = AdminKey;

    fn deref(&self) -> &AdminKey {
        &self.0.stored.key
    }
}

/// How stale a key's recorded "last used" may get before a use writes it again.
const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Records, off the request's path, that a verified key was used: considered once per
/// cache entry (one atomic read per request otherwise), written only when the stored time
/// is older than [`LAST_USED_PRECISION`]. A failed write is only logged: it loses a
/// timestamp, never a request.
fn note_use(key: &Arc<CachedKey>, state: &AppState) {
    if key.use_noted.load(Ordering::Relaxed) || key.use_noted.swap(true, Ordering::Relaxed) {
        return;
    }
    let now = chrono::Utc::now();
    if key
        .stored
        .key
        .last_used_at
        .is_some_and(|t| now - t < LAST_USED_PRECISION)
    {
        return;
    }
    let (store, id) = (state.store.clone(), key.stored.key.id.clone());
    tokio::spawn(async move {
        if let Err(e) = store.touch_admin_key(&id, now).await {
            tracing::debug!(error = %e, key = %id, "could not record the key's use");
        }
    });
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let value = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        Self::authenticate(value, state).await
    }
}

impl AdminAuth {
    /// Checks an `Authorization` header's value (the first, if several). A key in the
    /// cache's front layer is answered without waiting.
    pub async fn authenticate(value: Option<&[u8]>, state: &AppState) -> ApiResult<Self> {
        let (id, secret) = presented(value)?;
        // Loaded once for all concurrent requests with this key id.
        let load = async {
            state
                .store
                .find_admin_key(id)
                .await
                .map(|k| k.map(|k| Arc::new(CachedKey::from(k))))
        };
        let stored = get_or_load(state.lookups.keys(), id, load)
            .await
            .map_err(StoreError::from)?;
        Self::verified(secret, stored, state)
    }

    fn verified(secret: &str, stored: Option<Arc<CachedKey>>, state: &AppState) -> ApiResult<Self> {
        // The secret is checked on every request, cached or not, in constant time.
        let hash = stored.as_ref().map(|s| s.stored.secret_hash.as_slice());
        if !admin_key::verify(secret, hash) {
            return Err(ApiError::unauthorized());
        }
        let stored = stored.expect("verify fails without a stored key");
        note_use(&stored, state);
        Ok(Self {
            key: SharedKey(stored),
            state: state.clone(),
        })
    }

    /// 403 unless the key holds `cap` (or `InstanceAdmin`).
    pub fn require(&self, cap: Capability) -> ApiResult<()> {
        if self.key.has(cap) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this key lacks the {cap} capability"
            )))
        }
    }

    /// 403 unless the key holds one of `caps`.
    pub fn require_any(&self, caps: &[Capability]) -> ApiResult<()> {
        if caps.iter().any(|c| self.key.has(*c)) {
            return Ok(());
        }
        let names: Vec<_> = caps.iter().map(|c| c.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "this key lacks any of the capabilities {}",
            names.join(", ")
        )))
    }

    /// 403 for app-bound keys: instance-level operations need an unbound key.
    pub fn require_unbound(&self, what: &str) -> ApiResult<()> {
        match self.key.app_id {
            None => Ok(()),
            Some(_) => Err(ApiError::forbidden(format!(
                "an app-bound key cannot {what}"
            ))),
        }
    }

    /// Resolves an `{app}` path segment (slug or id) to an app this key may see; 404
    /// otherwise, whether the app is missing or belongs to someone else.
    pub async fn app(&self, slug_or_id: &str) -> ApiResult<App> {
        self.shared_app(slug_or_id).await.map(Arc::unwrap_or_clone)
    }

    /// [`Self::app`], as the cache holds it (no copy of its strings).
    pub async fn shared_app(&self, slug_or_id: &str) -> ApiResult<Arc<App>> {
        let load = async { Ok(self.lookup_app(slug_or_id).await?.map(Arc::new)) };
        let app = get_or_load(self.state.lookups.apps(), slug_or_id, load)
            .await
            .map_err(StoreError::from)?;
        self.visible(app)
    }

    fn visible(&self, app: Option<Arc<App>>) -> ApiResult<Arc<App>> {
        app.filter(|a| self.key.can_see(&a.id))
            .ok_or_else(|| ApiError::not_found("app"))
    }

    /// [`Self::app_with`], as the cache holds the app.
    pub async fn shared_app_with(&self, slug_or_id: &str, cap: Capability) -> ApiResult<Arc<App>> {
        let app = self.shared_app(slug_or_id).await?;
        self.require(cap)?;
        Ok(app)
    }

    async fn lookup_app(&self, slug_or_id: &str) -> Result<Option<App>, StoreError> {
        let store = &self.state.store;
        let mut app = None;
        if looks_like_id(slug_or_id) {
            app = store.get_app(&AppId(slug_or_id.to_owned())).await?;
        }
        if app.is_none() {
            if let Ok(slug) = Slug::parse(slug_or_id) {
                app = store.get_app_by_slug(&slug).await?;
            }
        }
        Ok(app)
    }

    /// [`Self::app`] then [`Self::require_any`].
    pub async fn app_with_any(&self, slug_or_id: &str, caps: &[Capability]) -> ApiResult<App> {
        let app = self.app(slug_or_id).await?;
        self.require_any(caps)?;
        Ok(app)
    }

    /// [`Self::app`] then [`Self::require`]: visibility first, so a key bound to another
    /// app sees 404 rather than learning from a 403 that the app exists.
    pub async fn app_with(&self, slug_or_id: &str, cap: Capability) -> ApiResult<App> {
        self.shared_app_with(slug_or_id, cap)
            .await
            .map(Arc::unwrap_or_clone)
    }
}
