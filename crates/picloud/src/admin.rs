//! `picloud admin …`: offline administration straight against the database.

use anyhow::{bail, Context};
use picloud_core::admin_key;
use picloud_core::app::Slug;
use picloud_core::capability::Capability;
use picloud_core::ids::{looks_like_id, AppId};
use picloud_core::store::{AdminKeyStore, AppStore};
use picloud_store::SqlStore;

use crate::cli::{DbArgs, KeyCommand, KeyCreateArgs};

pub async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create(args) => create(args).await,
        KeyCommand::List(db) => list(&db).await,
        KeyCommand::Revoke { id, db } => revoke(&id, &db).await,
    }
}

async fn create(args: KeyCreateArgs) -> anyhow::Result<()> {
    let capabilities = args
        .capabilities
        .iter()
        .map(|c| c.parse::<Capability>())
        .collect::<Result<Vec<_>, _>>()?;
    let store = crate::open_store(&args.db).await?;
    let app_id = match &args.app {
        Some(app) => Some(find_app(&store, app).await?),
        None => None,
    };
    let issued = admin_key::issue(capabilities, app_id, args.label)?;
    store
        .create_admin_key((&issued).into())
        .await
        .context("cannot store the key")?;
    store.close().await;
    eprintln!("Created admin key {} (shown once):", issued.key.id);
    println!("{}", issued.plaintext);
    Ok(())
}

pub(crate) async fn find_app(store: &SqlStore, slug_or_id: &str) -> anyhow::Result<AppId> {
    if looks_like_id(slug_or_id) {
        if let Some(app) = store.get_app(&AppId(slug_or_id.to_owned())).await? {
            return Ok(app.id);
        }
    }
    let slug = Slug::parse(slug_or_id)?;
    match store.get_app_by_slug(&slug).await? {
        Some(app) => Ok(app.id),
        None => bail!("no app {slug_or_id:?}"),
    }
}

/// The keys as a table: ids and what they may do, never secrets; a bound key's app by slug.
async fn list(db: &DbArgs) -> anyhow::Result<()> {
    let store = crate::open_store(db).await?;
    let keys = store.list_admin_keys().await?;
    let mut slugs = std::collections::HashMap::new();
    for id in keys.iter().filter_map(|k| k.app_id.as_ref()) {
        if !slugs.contains_key(id) {
            let slug = store.get_app(id).await?.map(|a| a.slug.to_string());
            slugs.insert(id.clone(), slug);
        }
    }
    store.close().await;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["ID", "CAPABILITIES", "APP", "CREATED", "LAST USED", "LABEL"]);
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    for k in keys {
        let caps: Vec<_> = k.capabilities.iter().map(|c| c.as_str()).collect();
        let app = match &k.app_id {
            None => "(all)".to_owned(),
            // A key bound to a deleted app can touch nothing.
            Some(id) => slugs[id]
                .clone()
                .unwrap_or_else(|| format!("{id} (deleted)")),
        };
        table.add_row([
            k.id,
            caps.join(","),
            app,
            time(k.created_at),
            k.last_used_at.map_or_else(|| "never".to_owned(), time),
            k.label,
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn revoke(id: &str, db: &DbArgs) -> anyhow::Result<()> {
    let store = crate::open_store(db).await?;
    let deleted = store.delete_admin_key(id).await?;
    store.close().await;
    if !deleted {
        bail!("no admin key {id:?}");
    }
    eprintln!("Revoked admin key {id}");
    Ok(())
}
