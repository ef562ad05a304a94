//! `picloud token mint` (offline), `picloud publish` (through the server's admin API, so
//! the message reaches live subscribers; an offline publish could only reach history) and
//! `picloud deploy` (through the server, which compiles the script first).

use std::io::Read;
use std::sync::Arc;

use anyhow::{bail, Context};
use picloud_realtime::token::MintError;
use picloud_realtime::TokenService;

use reqwest::Method;

use crate::api_client::{AdminApi, Body, Refused};
use crate::cli::{DeployArgs, PublishArgs, TokenMintArgs};

pub async fn mint(args: TokenMintArgs) -> anyhow::Result<()> {
    let store = crate::open_store(&args.db).await?;
    let app = crate::admin::find_app(&store, &args.app).await?;
    let shared = Arc::new(store.clone());
    let tokens = TokenService::new(shared.clone(), shared, std::time::Duration::from_secs(1));
    let minted = tokens
        .mint(
            &app,
            &args.topics,
            args.ttl_secs,
            args.subject,
            &args.publish,
        )
        .await;
    store.close().await;
    let (token, exp) = minted.map_err(|e| match e {
        MintError::Validation(v) => anyhow::anyhow!(v),
        MintError::Store(s) => anyhow::anyhow!(s),
        MintError::Internal(s) => anyhow::anyhow!(s),
    })?;
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
    eprintln!("Subscriber token for {} (expires {expires}):", args.app);
    println!("{token}");
    Ok(())
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let body = match args.message.as_deref() {
        Some(m) if m != "-" => m.to_owned(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the message from stdin")?;
            s
        }
    };
    serde_json::from_str::<serde_json::Value>(&body).context("the message is not valid JSON")?;
    let mut path = format!("/apps/{}/topics/{}/publish", args.app, args.topic);
    if args.ephemeral {
        path.push_str("?ephemeral=true");
    }
    let api = AdminApi::new(&args.server);
    let answer = api
        .send(Method::POST, &path, Body::Bytes(body.into_bytes()))
        .await?;
    println!("{}", String::from_utf8_lossy(&answer));
    Ok(())
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let source = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the script from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let api = AdminApi::new(&args.server);
    let path = format!("/apps/{}/scripts", args.app);
    let body = serde_json::json!({"name": args.name, "source": source});
    let body = match api.json(Method::POST, &path, Body::Json(body)).await {
        Ok(b) => b,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<Refused>() {
                let e = &r.body["error"];
                if e["code"] == "compile_error" {
                    let message = e["message"].as_str().unwrap_or("compile error");
                    bail!(
                        "{}:{}:{}: {message}",
                        args.file.display(),
                        e["line"],
                        e["column"]
                    );
                }
            }
            return Err(e);
        }
    };
    eprintln!(
        "Deployed {} version {} to {}",
        args.name, body["version"], args.app
    );
    println!("{body}");
    Ok(())
}
