//! `picloud backup create|list|restore`: the first two ask the running server (which
//! alone may read its database while it runs); `restore` works offline on a new data dir.

use std::path::{Path, PathBuf};

use anyhow::Context;
use picloud_api::backups::archive;
use reqwest::Method;

use crate::api_client::{AdminApi, Body};
use crate::cli::{BackupCreateArgs, BackupRestoreArgs, ServerArgs};

pub async fn create(args: BackupCreateArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(&args.server);
    let made = api.json(Method::POST, "/backups", Body::None).await?;
    let name = made["name"]
        .as_str()
        .context("the answer names no backup")?;
    eprintln!(
        "backup {name} made on the server ({} bytes)",
        made["bytes"].as_u64().unwrap_or(0)
    );
    if let Some(to) = &args.to {
        let bytes = api
            .download(&format!("/backups/{name}"), to)
            .await
            .with_context(|| format!("downloading {name} to {}", to.display()))?;
        eprintln!("downloaded to {} ({bytes} bytes)", to.display());
    }
    println!("{name}");
    Ok(())
}

pub async fn list(server: ServerArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(&server);
    let list = api.get("/backups").await?;
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["NAME", "CREATED", "BYTES", "SCHEDULED"]);
    for b in list["backups"].as_array().into_iter().flatten() {
        table.add_row([
            b["name"].as_str().unwrap_or_default().to_owned(),
            b["created_at"].as_str().unwrap_or_default().to_owned(),
            b["bytes"].to_string(),
            b["scheduled"].to_string(),
        ]);
    }
    println!("{table}");
    if let Some(dir) = list["dir"].as_str() {
        eprintln!("on the server in {dir}");
    }
    Ok(())
}

pub async fn restore(args: BackupRestoreArgs) -> anyhow::Result<()> {
    let blob_dir = args
        .blob_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("files"));
    let made = [claim_empty(&args.data_dir)?, claim_empty(&blob_dir)?];
    let result = unpack_and_check(&args.file, &args.data_dir, &blob_dir).await;
    if result.is_err() {
        // Leave the directories as they were: nothing half-restored to start a server on.
        for (dir, created) in [&args.data_dir, &blob_dir].into_iter().zip(made).rev() {
            let _ = std::fs::remove_dir_all(dir);
            if !created {
                let _ = std::fs::create_dir_all(dir);
            }
        }
    }
    let manifest = result?;
    eprintln!(
        "restored the backup of {} (PiCloud {}): database {} bytes, {} files ({} bytes)",
        manifest.created_at.to_rfc3339(),
        manifest.picloud_version,
        manifest.database_bytes,
        manifest.files,
        manifest.file_bytes
    );
    eprintln!(
        "start it with: picloud serve --data-dir {}",
        args.data_dir.display()
    );
    Ok(())
}

async fn unpack_and_check(
    file: &Path,
    data_dir: &Path,
    blob_dir: &Path,
) -> anyhow::Result<archive::Manifest> {
    let (file, data, blobs) = (file.to_owned(), data_dir.to_owned(), blob_dir.to_owned());
    let manifest = tokio::task::spawn_blocking(move || archive::unpack(&file, &data, &blobs))
        .await?
        .context("cannot restore")?;
    picloud_store::check_sqlite_file(&data_dir.join(archive::DATABASE))
        .await
        .map_err(|e| anyhow::anyhow!("the backup's database is damaged: {e}"))?;
    crate::private::secure(
        data_dir,
        &picloud_store::DatabaseLocation::SqliteFile(data_dir.join(archive::DATABASE)),
    )?;
    Ok(manifest)
}

/// Makes sure `dir` is new or empty (creating it); true when it was created here.
fn claim_empty(dir: &PathBuf) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            anyhow::ensure!(
                entries.next().is_none(),
                "{} is not empty: restore into a new or empty directory",
                dir.display()
            );
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
