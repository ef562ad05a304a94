//! The admin API as the commands that go through a running server call it (`publish`,
//! `deploy`, `app deploy`, `app export`): one place that joins URLs, sends the key and turns
//! an error answer into its message.

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::ServerArgs;

pub struct AdminApi {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// What a request carries.
pub enum Body {
    None,
    Json(Value),
    /// Sent as is (a publish's message, a static file).
    Bytes(Vec<u8>),
}

/// A failed answer: its status and the server's message.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub body: Value,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.body["error"]["message"]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned);
        write!(f, "{}: {message}", self.status)
    }
}

impl std::error::Error for Refused {}

impl AdminApi {
    pub fn new(server: &ServerArgs) -> Self {
        Self {
            base: server.url.trim_end_matches('/').to_owned(),
            key: server.key.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// The answer's bytes on success; [`Refused`] (inside the error) otherwise.
    pub async fn send(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.key);
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Bytes(b) => req.body(b),
        };
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        let bytes = res.bytes().await.context("reading the answer")?.to_vec();
        if !status.is_success() {
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            return Err(Refused { status, body }.into());
        }
        Ok(bytes)
    }

    /// Streams a GET's answer into `dest` (written to a `.part` file, synced, then renamed):
    /// backups are too big to hold in memory. Answers the bytes written.
    pub async fn download(&self, path: &str, dest: &std::path::Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let url = format!("{}/api/v1{path}", self.base);
        let mut res = self
            .http
            .get(&url)
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        if !status.is_success() {
            let bytes = res.bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            return Err(Refused { status, body }.into());
        }
        let mut part = dest.as_os_str().to_owned();
        part.push(".part");
        let part = std::path::PathBuf::from(part);
        let mut file = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot create {}", part.display()))?;
        let mut written = 0u64;
        let copied: anyhow::Result<()> = async {
            while let Some(chunk) = res.chunk().await.context("reading the answer")? {
                file.write_all(&chunk).await?;
                written += chunk.len() as u64;
            }
            file.sync_all().await?;
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, dest).await?;
        Ok(written)
    }

    /// A JSON answer (`null` for an empty one).
    pub async fn json(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let bytes = self.send(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).context("the answer is not JSON")
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::GET, path, Body::None).await
    }

    /// `None` when the server answers 404.
    pub async fn get_opt(&self, path: &str) -> anyhow::Result<Option<Value>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if refused_with(&e, StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether `e` is the server refusing with `status`.
pub fn refused_with(e: &anyhow::Error, status: StatusCode) -> bool {
    e.downcast_ref::<Refused>()
        .is_some_and(|r| r.status == status)
}
