//! Command-line interface. Every flag has a `PICLOUD_*` (or standard) env equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "picloud",
    version,
    about = "PiCloud: multi-tenant serverless pub/sub"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Subscriber tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Publish a message through a running server (so live subscribers get it).
    Publish(PublishArgs),
    /// Deploy a Rhai script as the next version (through a running server, which compiles
    /// it first and answers compile errors with line and column).
    Deploy(DeployArgs),
    /// Apps as manifests (picloud.toml), through a running server.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Backups of a SQLite server: made and listed by the running server, restored
    /// offline into an empty data dir (docs/operations.md).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Administer the instance offline, straight against the database.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Make a backup now, while the server runs; prints its name (kept on the server, in
    /// its backup directory).
    Create(BackupCreateArgs),
    /// List the server's backups, newest first.
    List(ServerArgs),
    /// Restore a backup file into a new or empty data dir (offline: then start
    /// `picloud serve` on that data dir).
    Restore(BackupRestoreArgs),
}

#[derive(Args, Debug)]
pub struct BackupCreateArgs {
    /// Also download the backup to this file.
    #[arg(long)]
    pub to: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct BackupRestoreArgs {
    /// The backup file (`picloud-….tar.gz`).
    pub file: PathBuf,
    /// The data dir to restore into: it must not exist or be empty.
    #[arg(long, env = "PICLOUD_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Where the files go, when the server keeps them outside the data dir
    /// (`PICLOUD_BLOB_DIR`; default `<data dir>/files`). It must not exist or be empty.
    #[arg(long, env = "PICLOUD_BLOB_DIR")]
    pub blob_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Admin keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an admin key; prints it alone on the last line of stdout (shown once).
    Create(KeyCreateArgs),
    /// List admin keys (never their secrets).
    List(DbArgs),
    /// Revoke an admin key by id.
    Revoke {
        /// Key id: the 16 hex characters after `pk_`.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a subscriber token offline (straight against the database); prints it alone on
    /// the last line of stdout.
    Mint(TokenMintArgs),
}

#[derive(Args, Debug)]
pub struct TokenMintArgs {
    /// App slug or id.
    #[arg(long)]
    pub app: String,
    /// A topic name, or `prefix.*`; repeat for several.
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: i64,
    /// Subscriber id (the `sub` claim): the presence member.
    #[arg(long)]
    pub subject: Option<String>,
    /// A topic (or `prefix.*`) the holder may send client events to; repeat for several.
    #[arg(long = "publish")]
    pub publish: Vec<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// A running server's admin API, for the commands that go through it.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The server's admin URL (an admin host).
    #[arg(
        long = "url",
        env = "PICLOUD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An admin key with the capabilities the command needs.
    #[arg(long, env = "PICLOUD_ADMIN_KEY", hide_env_values = true)]
    pub key: String,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// App slug or id.
    pub app: String,
    /// The script's name.
    pub name: String,
    /// The Rhai source file; `-` reads stdin.
    pub file: std::path::PathBuf,
    /// ScriptDeploy.
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// App slug or id.
    pub app: String,
    pub topic: String,
    /// The message as JSON; `-` or absent reads it from stdin.
    pub message: Option<String>,
    /// Live subscribers only: no storage, no seq, no triggers.
    #[arg(long)]
    pub ephemeral: bool,
    /// AppPublish.
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Make the server match the app described in DIR/picloud.toml (docs/apps.md): create
    /// what is missing, update what changed (scripts as new versions); prints what it does.
    Deploy(AppDeployArgs),
    /// Write the manifest of an existing app (with its scripts and static files) into DIR.
    Export(AppExportArgs),
}

#[derive(Args, Debug)]
pub struct AppDeployArgs {
    /// The app's directory (holding picloud.toml), or the manifest file itself.
    pub dir: std::path::PathBuf,
    /// Print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete what the server has and the manifest does not (topics, scripts, routes,
    /// triggers, domains, static files; never env values).
    #[arg(long)]
    pub prune: bool,
    /// InstanceAdmin, or AppWrite + AppTopicManage + ScriptDeploy for an existing app.
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct AppExportArgs {
    /// App slug or id.
    pub slug: String,
    /// Where to write picloud.toml, scripts/ and static/.
    pub dir: std::path::PathBuf,
    /// Overwrite an existing picloud.toml.
    #[arg(long)]
    pub force: bool,
    /// AppRead.
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct KeyCreateArgs {
    /// A capability to grant; repeat for several (AppRead, AppWrite, AppTopicManage,
    /// AppPublish, ScriptDeploy, SecretsManage, InstanceAdmin).
    #[arg(long = "capability", required = true)]
    pub capabilities: Vec<String>,
    /// Bind the key to one app (slug or id).
    #[arg(long)]
    pub app: Option<String>,
    /// A note to recognise the key by.
    #[arg(long, default_value = "")]
    pub label: String,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Where the database is.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// Directory for the SQLite database and (later) file blobs.
    #[arg(long, env = "PICLOUD_DATA_DIR", default_value = "./picloud-data")]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; unset for SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PICLOUD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `redis://…`: this node joins a cluster (with PostgreSQL as DATABASE_URL): messages and
    /// changes made through any node reach every node at once.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// This node's name in the cluster (default: generated at start); unique per node.
    #[arg(long, env = "PICLOUD_NODE_ID")]
    pub node_id: Option<String>,
    /// Where file bytes (`files::`, static sites) are kept (default: `<data dir>/files`).
    /// Every node of a cluster must see the same directory (a shared mount).
    #[arg(long, env = "PICLOUD_BLOB_DIR")]
    pub blob_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Hosts that serve the admin API and dashboard, comma-separated.
    #[arg(
        long,
        env = "PICLOUD_ADMIN_HOSTS",
        default_value = "localhost,127.0.0.1",
        value_delimiter = ','
    )]
    pub admin_hosts: Vec<String>,
    /// Log format.
    #[arg(long, env = "PICLOUD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "PICLOUD_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most bytes one app's static files (its site on its Host) may hold together.
    #[arg(long, env = "PICLOUD_STATIC_QUOTA_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub static_quota_bytes: u64,
    /// Seconds a client may take to send a request head (then 408), and a request to
    /// produce its response head.
    #[arg(long, env = "PICLOUD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests (a publisher's is
    /// closed after one to two such periods of silence).
    #[arg(long, env = "PICLOUD_KEEP_ALIVE_IDLE_SECS", default_value_t = 75,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_alive_idle_secs: u64,
    /// Open connections at most (SSE streams included); more are accepted and closed at
    /// once, and counted in `picloud_connections_refused_total`.
    #[arg(long, env = "PICLOUD_MAX_CONNECTIONS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds between SSE keepalive comments (proxies cut idle streams at 60–100 s).
    #[arg(long, env = "PICLOUD_REALTIME_HEARTBEAT_SEC", default_value_t = 15)]
    pub realtime_heartbeat_sec: u64,
    /// Seconds a WebSocket may be silent before the server pings it; it is dropped (and
    /// its presence left) when nothing answers within 10 s more (at most the ping time).
    #[arg(long, env = "PICLOUD_WS_PING_SEC", default_value_t = 25)]
    pub ws_ping_sec: u64,
    /// Seconds a write to a subscriber (SSE or WebSocket) may wait for its client to take
    /// any of it; past that the client has stopped reading and is dropped (counted in
    /// `picloud_realtime_slow_consumer_disconnects_total`). It resumes when it reconnects.
    #[arg(long, env = "PICLOUD_SEND_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub send_timeout_secs: u64,
    /// Largest message payload a publish accepts, in bytes.
    #[arg(long, env = "PICLOUD_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// Publish lanes: batches split by topic, each lane committing one batch at a time.
    /// Unset: 1, the measured best on both databases (docs/benchmarks.md).
    #[arg(long, env = "PICLOUD_PUBLISH_LANES")]
    pub publish_lanes: Option<usize>,
    /// Script deliveries (trigger runs) running at once on this node; 0 turns the
    /// dispatcher off (the node serves requests only; deliveries wait for another node).
    #[arg(long, env = "PICLOUD_DISPATCH_WORKERS", default_value_t = 64)]
    pub dispatch_workers: usize,
    /// Milliseconds a claimed delivery is leased: a crashed node's deliveries run again
    /// this long after it claimed them.
    #[arg(long, env = "PICLOUD_DISPATCH_LEASE_MS", default_value_t = 30_000)]
    pub dispatch_lease_ms: u64,
    /// Seconds a shutdown (SIGINT/SIGTERM) may take in all: in-flight requests and running
    /// scripts get 70 % of it, closing the database the rest; then the process exits.
    #[arg(long, env = "PICLOUD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Where backups are written (default: `<data dir>/backups`). SQLite only.
    #[arg(long, env = "PICLOUD_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Make a backup on this cron schedule (UTC; 5 fields, or 6 with seconds first), e.g.
    /// `0 3 * * *` for 03:00 every day. SQLite only.
    #[arg(long, env = "PICLOUD_BACKUP_CRON")]
    pub backup_cron: Option<String>,
    /// Scheduled backups to keep (older ones are deleted after each new one; backups
    /// made by hand are kept until deleted).
    #[arg(long, env = "PICLOUD_BACKUP_KEEP", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub backup_keep: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
