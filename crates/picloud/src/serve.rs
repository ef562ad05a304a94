//! `picloud serve`: open the database, bootstrap on first start, serve until shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use picloud_api::{ApiConfig, AppState};
use picloud_core::admin_key;
use picloud_core::capability::Capability;
use picloud_core::host::Host;
use picloud_core::store::AdminKeyStore;
use picloud_store::SqlStore;

use crate::cli::ServeArgs;
use crate::shutdown::Shutdown;

pub async fn run(args: ServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let config = api_config(&args)?;
    if args.redis_url.is_some() && args.db.database_url.is_none() {
        anyhow::bail!(
            "REDIS_URL makes a cluster, whose nodes share one PostgreSQL database: set DATABASE_URL \
             too (SQLite serves one node)"
        );
    }
    let backup_schedule = backup_schedule(&args)?;
    let (store, _lock) = crate::open_store_locked(&args.db).await?;
    // Listening first: a start that cannot bind (the port is taken) must not spend the
    // one-time bootstrap key it could never show working.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bootstrap_key = bootstrap(&store).await?;
    let addr = listener.local_addr()?;
    let admin_host = config
        .admin_hosts
        .first()
        .map_or_else(|| addr.ip().to_string(), Host::to_string);
    tracing::info!(
        %addr,
        admin_api = %format!("http://{admin_host}:{}/api/v1", addr.port()),
        apps = %format!("http://<slug>.localhost:{}/", addr.port()),
        "PiCloud {} listening",
        env!("CARGO_PKG_VERSION"),
    );
    // On stdout, never through the logger: logs are kept and shipped, a terminal is not.
    let dashboard = format!("http://{admin_host}:{}/_/", addr.port());
    match bootstrap_key {
        Some(key) => println!(
            "\nBootstrap admin key (InstanceAdmin). It is shown this once; store it now:\n{key}\n\
             Dashboard: {dashboard} (sign in with the key)\n"
        ),
        None => println!("Dashboard: {dashboard}"),
    }

    // The metrics recorder first: a handle taken before it is installed (the realtime
    // lag and publish histograms are taken at start) would record nowhere, for good.
    picloud_api::metrics::handle();
    let store_dyn: Arc<dyn picloud_core::store::Store> = Arc::new(store.clone());
    let cluster = match &args.redis_url {
        Some(url) => {
            let node: Arc<str> = args
                .node_id
                .clone()
                .unwrap_or_else(picloud_core::ids::new_id)
                .into();
            // A node starts while Redis is down, and polls PostgreSQL until it is back.
            let relay = picloud_realtime::relay::RedisRelay::connect(url, Duration::from_secs(2))
                .await
                .or_else(|_| picloud_realtime::relay::RedisRelay::start(url))
                .context("REDIS_URL is not a Redis URL")?;
            let presence =
                picloud_realtime::presence::RedisPresence::start(url, &node, shutdown.token())
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("REDIS_URL is not a Redis URL")?;
            Some(picloud_realtime::cluster::ClusterConfig {
                node,
                relay: Arc::new(relay),
                presence: Some(presence),
            })
        }
        None => None,
    };
    let realtime = picloud_realtime::Realtime::start(
        store_dyn.clone(),
        picloud_realtime::RealtimeConfig {
            heartbeat: Duration::from_secs(args.realtime_heartbeat_sec.max(1)),
            ws_ping: Duration::from_secs(args.ws_ping_sec.max(1)),
            ws_pong_wait: Duration::from_secs(args.ws_ping_sec.clamp(1, 10)),
            send_timeout: Duration::from_secs(args.send_timeout_secs),
            max_payload_bytes: args.max_message_bytes,
            publish_lanes: args.publish_lanes,
            ..Default::default()
        },
        shutdown.token(),
        cluster,
    )
    .await;
    let outbox_written = Arc::new(tokio::sync::Notify::new());
    let blob_dir = args
        .blob_dir
        .clone()
        .unwrap_or_else(|| args.db.data_dir.join("files"));
    if args.redis_url.is_some() && args.blob_dir.is_none() {
        tracing::warn!(
            dir = %blob_dir.display(),
            "cluster mode with file bytes in this node's data dir: files and static sites \
             written through another node are not found here; set PICLOUD_BLOB_DIR to a \
             directory every node shares"
        );
    }
    let blobs = picloud_dispatch::BlobStore::new(blob_dir);
    let invoker = picloud_dispatch::Invoker::new(
        picloud_dispatch::HostDeps {
            store: store_dyn.clone(),
            realtime: realtime.clone(),
            blobs: blobs.clone(),
            outbox_written: outbox_written.clone(),
        },
        picloud_dispatch::InvokerConfig::default(),
    );
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let drain_time = drain_window(grace);
    let dispatcher = picloud_dispatch::Dispatcher::new(
        invoker.clone(),
        picloud_dispatch::DispatcherConfig {
            workers: args.dispatch_workers,
            lease: Duration::from_millis(args.dispatch_lease_ms.max(1000)),
            grace: drain_time,
            ..Default::default()
        },
        vec![outbox_written, realtime.publisher.committed()],
    );
    // 0 workers: this node serves requests only and leaves deliveries to other nodes.
    let dispatcher = if args.dispatch_workers > 0 {
        tokio::spawn(dispatcher.run(shutdown.token()))
    } else {
        tracing::info!("dispatcher off (PICLOUD_DISPATCH_WORKERS=0)");
        tokio::spawn(async {})
    };
    picloud_dispatch::sweeper::spawn(
        store_dyn.clone(),
        blobs.clone(),
        Default::default(),
        shutdown.token(),
    );
    let backups = Arc::new(picloud_api::backups::Backups::new(
        args.backup_dir
            .clone()
            .unwrap_or_else(|| args.db.data_dir.join("backups")),
        store_dyn.clone(),
        blobs,
        backup_schedule,
    ));
    backups.clone().spawn_schedule(shutdown.token());
    let state = AppState::new(store_dyn, config, realtime, invoker.clone());
    state.with_backups(backups);
    if let Some(node) = state.realtime.cluster.clone() {
        tracing::info!(node = %node.id, "cluster mode: messages and changes relayed through Redis");
        state.join_cluster(picloud_api::changes::ControlPlane::new(node));
    }
    let router = picloud_api::build(state);
    let drain = shutdown.clone();
    let server = tokio::spawn(picloud_api::serve(listener, router, async move {
        drain.wait().await
    }));

    shutdown.wait().await;
    let deadline = tokio::time::Instant::now() + grace;
    watchdog(grace);
    // The dispatcher stops claiming at once and gives running deliveries the same drain
    // window as requests; whatever it then cancels runs again after its lease.
    let (served, dispatched) = tokio::join!(
        tokio::time::timeout(drain_time, server),
        tokio::time::timeout_at(deadline - (grace - drain_time) / 2, dispatcher)
    );
    match served {
        Ok(joined) => joined.context("server task")?.context("server")?,
        Err(_) => tracing::warn!(
            ?drain_time,
            "in-flight requests still running after the drain window; exiting"
        ),
    }
    if dispatched.is_err() {
        invoker.cancel_running();
        tracing::warn!("script deliveries still running after the drain window; cancelled");
    }
    // Flushing records and closing the database wait on the database, which may be full
    // or gone: they get what is left of the deadline, no more.
    let cleanup = async {
        invoker.flush_records().await;
        store.close().await;
    };
    if tokio::time::timeout_at(deadline, cleanup).await.is_err() {
        tracing::warn!("the database did not close before the shutdown deadline; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `PICLOUD_BACKUP_CRON` and `PICLOUD_BACKUP_KEEP`, checked before anything starts.
fn backup_schedule(
    args: &ServeArgs,
) -> anyhow::Result<Option<picloud_api::backups::BackupSchedule>> {
    let Some(cron) = &args.backup_cron else {
        return Ok(None);
    };
    if args.db.database_url.is_some() {
        anyhow::bail!(
            "PICLOUD_BACKUP_CRON backs up SQLite; with DATABASE_URL, back up PostgreSQL with \
             pg_dump (docs/operations.md)"
        );
    }
    let cron = picloud_core::trigger::Schedule::parse(cron)
        .map_err(|e| anyhow::anyhow!("PICLOUD_BACKUP_CRON: {}", e.message))?;
    Ok(Some(picloud_api::backups::BackupSchedule {
        cron,
        keep: args.backup_keep as usize,
    }))
}

/// The part of the shutdown deadline in-flight requests and deliveries get; the rest is
/// for cancelling scripts, flushing invocation records and closing the database.
fn drain_window(grace: Duration) -> Duration {
    grace.mul_f64(0.7)
}

/// Ends the process, with a failure status, if a shutdown overruns its deadline anyway (a
/// thread, not a task, so a wedged runtime cannot hold it back). Nothing is lost: what was
/// acknowledged is committed, and unfinished deliveries run again after their lease.
fn watchdog(grace: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(grace + Duration::from_millis(500));
        tracing::error!(?grace, "shutdown overran its deadline; exiting now");
        std::process::exit(1);
    });
}

fn api_config(args: &ServeArgs) -> anyhow::Result<ApiConfig> {
    let admin_hosts = args
        .admin_hosts
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| Host::parse(h).with_context(|| format!("invalid admin host {h:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        !admin_hosts.is_empty(),
        "at least one admin host is required"
    );
    Ok(ApiConfig {
        admin_hosts,
        max_body_bytes: args.max_body_bytes,
        static_quota_bytes: args.static_quota_bytes,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        keep_alive_idle: Duration::from_secs(args.keep_alive_idle_secs),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        ..ApiConfig::default()
    })
}

/// On the first start against an empty database, creates an `InstanceAdmin` key and returns
/// it, to be printed once.
async fn bootstrap(store: &SqlStore) -> anyhow::Result<Option<String>> {
    let issued = admin_key::issue(vec![Capability::InstanceAdmin], None, "bootstrap".into())?;
    let created = store
        .create_bootstrap_admin_key((&issued).into())
        .await
        .context("cannot create the bootstrap admin key")?;
    if !created {
        return Ok(None);
    }
    tracing::info!(key_id = %issued.key.id, "bootstrap admin key created (printed on stdout)");
    Ok(Some(issued.plaintext))
}
