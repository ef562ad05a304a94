//! The `picloud` binary: parses arguments and hands over to a command. Nothing else.
//!
//! # Layout
//! - `cli`: clap definitions (flags and `PICLOUD_*` env).
//! - `serve`: `picloud serve` (store → bootstrap → router → serve until shutdown).
//! - `lock`: one server per SQLite database; `private`: the data dir's modes.
//! - `admin`: offline admin commands; `realtime_cmd`: `token mint`, `publish`, `deploy`;
//!   `app_cmd`: `app deploy`/`app export` over `manifest` (picloud.toml); `api_client`: the
//!   admin API as those commands call it; `backup_cmd`: `backup create|list|restore`; `shutdown`: the signal-driven shutdown token;
//!   `logging`: tracing setup.

mod admin;
mod api_client;
mod app_cmd;
mod backup_cmd;
mod cli;
mod lock;
mod logging;
mod manifest;
mod private;
mod realtime_cmd;
mod serve;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;
use cli::{AdminCommand, AppCommand, BackupCommand, Cli, Command, DbArgs, LogFormat, TokenCommand};
use picloud_store::{DatabaseLocation, SqlStore};

/// mimalloc: cheaper small allocations on the request and fan-out paths than glibc's
/// allocator (measured with `picloud-bench`, docs/handback-history.md, session 2).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    private::restrict_umask();
    // Scripts run on picloud-dispatch's own script threads, which get the stack the script
    // runtime asks for. tokio's threads get it too, as headroom for anything that runs a
    // script elsewhere (a stack overflow aborts the whole process; only touched pages
    // cost RSS).
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(picloud_runtime::RECOMMENDED_STACK_BYTES)
        .build()
    {
        Ok(rt) => {
            let code = rt.block_on(run());
            // Blocking tasks still running (a file write on a stuck disk) must not hold
            // the exit: `serve` has already waited as long as its deadline allows.
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            code
        }
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            logging::init(args.log_format, "info");
            serve::run(args, shutdown::Shutdown::on_signals()).await
        }
        Command::Migrate(db) => {
            logging::init(LogFormat::Text, "warn");
            migrate(&db).await
        }
        Command::Token {
            command: TokenCommand::Mint(args),
        } => {
            logging::init(LogFormat::Text, "warn");
            realtime_cmd::mint(args).await
        }
        Command::Publish(args) => {
            logging::init(LogFormat::Text, "warn");
            realtime_cmd::publish(args).await
        }
        Command::Deploy(args) => {
            logging::init(LogFormat::Text, "warn");
            realtime_cmd::deploy(args).await
        }
        Command::App { command } => {
            logging::init(LogFormat::Text, "warn");
            match command {
                AppCommand::Deploy(args) => app_cmd::deploy(args).await,
                AppCommand::Export(args) => app_cmd::export(args).await,
            }
        }
        Command::Backup { command } => {
            logging::init(LogFormat::Text, "warn");
            match command {
                BackupCommand::Create(args) => backup_cmd::create(args).await,
                BackupCommand::List(server) => backup_cmd::list(server).await,
                BackupCommand::Restore(args) => backup_cmd::restore(args).await,
            }
        }
        Command::Admin {
            command: AdminCommand::Key { command },
        } => {
            logging::init(LogFormat::Text, "warn");
            admin::key(command).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens (and migrates) the existing database the flags point at: only `serve` and
/// `migrate` create one.
pub(crate) async fn open_store(db: &DbArgs) -> anyhow::Result<SqlStore> {
    let location = location(db)?;
    tracing::info!(database = %location.describe(), "opening database");
    Ok(picloud_store::connect_existing(&location).await?)
}

/// Opens the database for `serve`: locked to this process and made private first (see
/// `lock`, `private`).
pub(crate) async fn open_store_locked(
    db: &DbArgs,
) -> anyhow::Result<(SqlStore, Option<lock::DataDirLock>)> {
    let location = location(db)?;
    let lock = lock::acquire(&location)?;
    private::secure(&db.data_dir, &location)?;
    Ok((connect(&location).await?, lock))
}

fn location(db: &DbArgs) -> anyhow::Result<DatabaseLocation> {
    Ok(DatabaseLocation::from_config(
        db.database_url.as_deref(),
        &db.data_dir,
    )?)
}

async fn connect(location: &DatabaseLocation) -> anyhow::Result<SqlStore> {
    tracing::info!(database = %location.describe(), "opening database");
    Ok(picloud_store::connect(location).await?)
}

async fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let store = connect(&location(db)?).await?;
    store.close().await;
    eprintln!("migrations applied");
    Ok(())
}
