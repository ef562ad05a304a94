//! Subscriber tokens: HS256 JWTs signed with one of the app's secrets (DESIGN §6).
//!
//! Header `{"alg":"HS256","typ":"JWT","kid":<secret id>}`; claims `aud` (app id), `sub`
//! (optional subscriber id), `topics` (names, or `prefix.*`), `iat`, `exp`, and optionally
//! `nbf`. Any JWT library holding the app secret can mint one. Verification accepts HS256
//! only (so `alg: none` and algorithm confusion fail), requires a known active `kid`,
//! checks `aud`, `exp` and `nbf`, and refuses a token whose lifetime (`exp − iat`, or
//! `exp − now` without `iat`) is over the app's maximum (`App::max_token_ttl_secs`, 30 days
//! by default), whoever minted it. Every failure
//! is the same [`VerifyError::Invalid`]: callers must not say which check failed. HMAC
//! comparison is constant-time inside `jsonwebtoken`.
//!
//! Retiring a secret (or deleting the app) revokes what it signed at once on this node:
//! every open stream holds its token's [`TokenService::revocation`] and ends with
//! `token_revoked` when it fires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moka::future::Cache;
use picloud_core::ids::AppId;
use picloud_core::secret::AppSecret;
use picloud_core::store::{AppStore, SecretStore};
use picloud_core::topic::TopicPattern;
use picloud_core::{StoreError, ValidationError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Most topic patterns in one token.
pub const MAX_TOKEN_TOPICS: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub topics: Vec<String>,
    /// Topics (names or patterns) the holder may send client events to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

/// A verified token: what it grants and until when.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The secret that signed it: retiring it revokes the grant.
    pub kid: String,
    pub subject: Option<String>,
    pub patterns: Vec<TopicPattern>,
    /// Where client events may go (the `publish` claim).
    pub publish: Vec<TopicPattern>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Grant {
    pub fn allows(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(topic))
    }

    pub fn allows_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }
}

/// An app's active secrets and its token lifetime limit, cached together.
struct AppKeys {
    secrets: Vec<AppSecret>,
    max_ttl: i64,
}

/// Mints and verifies tokens, with the app's active secrets cached.
#[derive(Clone)]
pub struct TokenService {
    secrets: Arc<dyn SecretStore>,
    /// For each app's token lifetime limit.
    apps: Arc<dyn AppStore>,
    /// App → its active secrets. Invalidated on rotation and retirement on this node; the
    /// TTL bounds how long another node may keep accepting a retired key.
    keys: Cache<AppId, Arc<AppKeys>>,
    /// (app, kid) → fired when that secret is retired or the app deleted, for the streams
    /// its tokens opened. An entry lives from its first stream until it fires.
    revocations: Arc<Mutex<HashMap<(AppId, String), CancellationToken>>>,
}

impl TokenService {
    pub fn new(
        secrets: Arc<dyn SecretStore>,
        apps: Arc<dyn AppStore>,
        key_cache_ttl: Duration,
    ) -> Self {
        Self {
            secrets,
            apps,
            keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(key_cache_ttl)
                .build(),
            revocations: Arc::default(),
        }
    }

    /// Fires when the secret `kid` of `app` is retired or the app deleted on this node.
    pub fn revocation(&self, app: &AppId, kid: &str) -> CancellationToken {
        self.revocations
            .lock()
            .expect("not poisoned")
            .entry((app.clone(), kid.to_owned()))
            .or_default()
            .clone()
    }

    /// Ends every stream opened with a token of `app` (the app is gone).
    pub fn revoke_app(&self, app: &AppId) {
        self.revocations
            .lock()
            .expect("not poisoned")
            .retain(|(a, _), fired| {
                if a == app {
                    fired.cancel();
                }
                a != app
            });
    }

    async fn active_keys(&self, app: &AppId) -> Result<Arc<AppKeys>, StoreError> {
        // Loaded once for all concurrent verifications for this app.
        let load = async {
            let all = self.secrets.list_secrets(app).await?;
            let max_ttl = self
                .apps
                .get_app(app)
                .await?
                .map_or(picloud_core::app::DEFAULT_MAX_TOKEN_TTL_SECS, |a| {
                    a.max_token_ttl_secs
                });
            Ok(Arc::new(AppKeys {
                secrets: all.into_iter().filter(AppSecret::is_active).collect(),
                max_ttl,
            }))
        };
        self.keys
            .try_get_with(app.clone(), load)
            .await
            .map_err(StoreError::from)
    }

    /// Forgets the cached keys and token limit of an app (after rotation, retirement or a
    /// change of its settings).
    pub async fn invalidate(&self, app: &AppId) {
        self.keys.invalidate(app).await;
    }

    /// Adds a new active secret (the newest signs from now on). Old ones stay valid until
    /// retired.
    pub async fn rotate(&self, app: &AppId) -> Result<AppSecret, StoreError> {
        let secret = AppSecret::generate();
        self.secrets.add_secret(app, &secret).await?;
        self.invalidate(app).await;
        Ok(secret)
    }

    /// Retires a key in the store (answers whether it was active). Its open streams end
    /// through [`Self::end_streams`], on every node.
    pub async fn retire(&self, app: &AppId, kid: &str) -> Result<bool, StoreError> {
        let done = self.secrets.retire_secret(app, kid).await?;
        self.invalidate(app).await;
        Ok(done)
    }

    /// Ends every stream on this node opened with a token signed by `kid` (retired).
    pub fn end_streams(&self, app: &AppId, kid: &str) {
        let fired = self
            .revocations
            .lock()
            .expect("not poisoned")
            .remove(&(app.clone(), kid.to_owned()));
        if let Some(fired) = fired {
            fired.cancel();
        }
    }

    /// Mints a token for `topics`, valid `ttl_secs`, signed with the newest active secret
    /// (created on first use).
    pub async fn mint(
        &self,
        app: &AppId,
        topics: &[String],
        ttl_secs: i64,
        subject: Option<String>,
        publish: &[String],
    ) -> Result<(String, i64), MintError> {
        if topics.is_empty() || topics.len() > MAX_TOKEN_TOPICS {
            return Err(ValidationError::new("topics", "must list 1 to 100 topics").into());
        }
        if publish.len() > MAX_TOKEN_TOPICS {
            return Err(ValidationError::new("publish", "must list at most 100 topics").into());
        }
        for t in topics.iter().chain(publish) {
            TopicPattern::parse(t)?;
        }
        let mut keys = self.active_keys(app).await?;
        if !(1..=keys.max_ttl).contains(&ttl_secs) {
            return Err(ValidationError::new(
                "ttl_secs",
                format!(
                    "must be 1 to {} (the app's max_token_ttl_secs)",
                    keys.max_ttl
                ),
            )
            .into());
        }
        if let Some(s) = &subject {
            if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "subject",
                    "must be 1 to 256 characters, no control characters",
                )
                .into());
            }
        }
        if keys.secrets.is_empty() {
            self.rotate(app).await?;
            keys = self.active_keys(app).await?;
        }
        let key = keys.secrets.last().expect("an active key after rotation");
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            aud: app.0.clone(),
            sub: subject,
            topics: topics.to_vec(),
            publish: publish.to_vec(),
            iat: Some(now),
            nbf: None,
            exp: now + ttl_secs,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key.secret))
            .map_err(|e| MintError::Internal(e.to_string()))?;
        Ok((token, claims.exp))
    }

    /// Verifies a token for `app`: signed by one of its active secrets, for this app, not
    /// expired, not before its `nbf`, no longer-lived than the app's `max_token_ttl_secs`, with valid topic
    /// patterns.
    pub async fn verify(&self, app: &AppId, token: &str) -> Result<Grant, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.ok_or(VerifyError::Invalid)?;
        let keys = self.active_keys(app).await.map_err(VerifyError::Store)?;
        let key = keys
            .secrets
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(VerifyError::Invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[app.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 0;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&key.secret),
            &validation,
        )
        .map_err(|_| VerifyError::Invalid)?;
        let issued = data
            .claims
            .iat
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        if data.claims.exp.saturating_sub(issued) > keys.max_ttl {
            return Err(VerifyError::Invalid);
        }
        let parse = |list: &[String]| {
            list.iter()
                .map(|t| TopicPattern::parse(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| VerifyError::Invalid)
        };
        Ok(Grant {
            kid,
            patterns: parse(&data.claims.topics)?,
            publish: parse(&data.claims.publish)?,
            subject: data.claims.sub,
            expires_at: data.claims.exp,
        })
    }
}

#[derive(Debug)]
pub enum MintError {
    Validation(ValidationError),
    Store(StoreError),
    Internal(String),
}

impl From<ValidationError> for MintError {
    fn from(e: ValidationError) -> Self {
        Self::Validation(e)
    }
}

impl From<StoreError> for MintError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

#[derive(Debug)]
pub enum VerifyError {
    /// Bad, expired, foreign, tampered or unknown-key token. Never say which.
    Invalid,
    Store(StoreError),
}
