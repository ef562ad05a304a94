//! `picloud app deploy DIR` and `picloud app export SLUG DIR`: an app as a manifest
//! (`picloud.toml`, docs/apps.md) against a running server's admin API.
//!
//! A deploy reads every local file first (a missing script fails before anything changes),
//! then reads the server's state and plans: what is missing is created, what differs is
//! updated (a changed script as a new version), nothing is deleted without `--prune`. The
//! plan is printed; `--dry-run` stops there. Run twice, the second run plans nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api_client::{AdminApi, Body};
use crate::cli::{AppDeployArgs, AppExportArgs};
use crate::manifest::{self, Manifest};

/// One change to make: what it is, and the request that makes it.
struct Step {
    what: String,
    method: Method,
    path: String,
    body: Body,
}

#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
    /// Said but not changed (env values to set by hand).
    notes: Vec<String>,
}

impl Plan {
    fn add(&mut self, what: String, method: Method, path: String, body: Body) {
        self.steps.push(Step {
            what,
            method,
            path,
            body,
        });
    }
}

/// A static file on disk: its path under the static directory, bytes and SHA-256.
struct LocalFile {
    path: String,
    bytes: Vec<u8>,
    sha256: String,
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn local_static(root: &Path) -> anyhow::Result<Vec<LocalFile>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in entries {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                dirs.push(p);
                continue;
            }
            let rel = p.strip_prefix(root)?;
            let path = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            picloud_core::data::FilePath::parse(&path)
                .map_err(|e| anyhow::anyhow!("static file {}: {}", p.display(), e.message))?;
            let bytes =
                std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            out.push(LocalFile {
                sha256: sha256(&bytes),
                path,
                bytes,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn list<'a>(v: &'a Option<Value>, key: &str) -> Vec<&'a Value> {
    v.as_ref()
        .and_then(|v| v[key].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Whether the server's filter is the manifest's: every field the manifest sets is equal,
/// and what the server adds is empty (it spells out `{"prefix": ""}` for `{}`).
fn same_filter(manifest: &Value, server: &Value) -> bool {
    let empty = serde_json::Map::new();
    let (m, s) = (
        manifest.as_object().unwrap_or(&empty),
        server.as_object().unwrap_or(&empty),
    );
    m.iter().all(|(k, v)| s.get(k) == Some(v))
        && s.iter()
            .filter(|(k, _)| !m.contains_key(*k))
            .all(|(_, v)| v.is_null() || v == "")
}

pub async fn deploy(args: AppDeployArgs) -> anyhow::Result<()> {
    let (m, dir) = Manifest::load(&args.dir)?;
    let limits = match &m.runtime {
        Some(rt) => picloud_runtime::Limits::from_overrides(&manifest::json(&rt.limits))
            .map_err(|e| anyhow::anyhow!("[runtime] limits: {e}"))?,
        None => picloud_runtime::Limits::default(),
    };
    let mut sources = BTreeMap::new();
    for (name, file) in &m.scripts {
        let path = dir.join(file);
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("script {name}: cannot read {}", path.display()))?;
        // The deploy's own check, here, so a script the server would refuse stops the
        // deploy before anything changes. Limits: the manifest's, else the defaults (the
        // server checks again under the app's own).
        if let Some(d) = picloud_runtime::check_script(&source, &limits).first() {
            bail!("{}:{}:{}: {}", path.display(), d.line, d.column, d.message);
        }
        sources.insert(name.clone(), source);
    }
    let statics = match &m.static_dir {
        Some(d) => local_static(&dir.join(d))?,
        None => Vec::new(),
    };
    let api = AdminApi::new(&args.server);
    let plan = plan(&api, &m, &sources, &statics, args.prune).await?;
    for note in &plan.notes {
        println!("! {note}");
    }
    if plan.steps.is_empty() {
        println!("{}: nothing to change", m.slug);
        return Ok(());
    }
    for s in &plan.steps {
        println!("{}", s.what);
    }
    if args.dry_run {
        println!(
            "{}: {} changes planned (dry run: nothing sent)",
            m.slug,
            plan.steps.len()
        );
        return Ok(());
    }
    let n = plan.steps.len();
    for s in plan.steps {
        api.send(s.method, &s.path, s.body)
            .await
            .with_context(|| format!("{} failed", s.what))?;
    }
    println!("{}: {n} changes made", m.slug);
    Ok(())
}

async fn plan(
    api: &AdminApi,
    m: &Manifest,
    sources: &BTreeMap<String, String>,
    statics: &[LocalFile],
    prune: bool,
) -> anyhow::Result<Plan> {
    let slug = &m.slug;
    let base = format!("/apps/{slug}");
    let mut plan = Plan::default();
    let app = api.get_opt(&base).await?;
    // Reads of a missing app's parts would all be 404: the app is created, everything with it.
    let read = |p: &str| {
        let path = format!("{base}{p}");
        let exists = app.is_some();
        async move {
            if exists {
                api.get_opt(&path).await
            } else {
                Ok(None)
            }
        }
    };

    // The app.
    let mut patch = serde_json::Map::new();
    match &app {
        None => {
            let mut body = json!({ "slug": slug });
            if let Some(n) = &m.name {
                body["name"] = json!(n);
            }
            plan.add(
                format!("+ app {slug}"),
                Method::POST,
                "/apps".into(),
                Body::Json(body),
            );
            if m.spa {
                patch.insert("static_spa".into(), json!(true));
            }
        }
        Some(a) => {
            if let Some(n) = m.name.as_ref().filter(|n| a["name"] != **n) {
                patch.insert("name".into(), json!(n));
            }
            if a["static_spa"] != m.spa {
                patch.insert("static_spa".into(), json!(m.spa));
            }
        }
    }
    if !patch.is_empty() {
        let fields: Vec<_> = patch.keys().cloned().collect();
        plan.add(
            format!("~ app {slug}: {}", fields.join(", ")),
            Method::PATCH,
            base.clone(),
            Body::Json(Value::Object(patch)),
        );
    }

    // Domains.
    let domains = read("/domains").await?;
    let have: BTreeMap<String, String> = list(&domains, "domains")
        .into_iter()
        .filter_map(|d| Some((d["host"].as_str()?.to_owned(), d["id"].as_str()?.to_owned())))
        .collect();
    for host in m.domains.iter().filter(|h| !have.contains_key(*h)) {
        plan.add(
            format!("+ domain {host}"),
            Method::POST,
            format!("{base}/domains"),
            Body::Json(json!({ "host": host })),
        );
    }

    // Runtime settings.
    if let Some(rt) = &m.runtime {
        let server = read("/runtime").await?;
        let limits = manifest::json(&rt.limits);
        let now_limits = server.as_ref().map_or(json!({}), |s| s["limits"].clone());
        let now_conc = server.as_ref().and_then(|s| s["max_concurrency"].as_u64());
        let conc = rt.max_concurrency.map(u64::from).or(now_conc).unwrap_or(8);
        if now_limits != limits || now_conc != Some(conc) {
            plan.add(
                "~ runtime".into(),
                Method::PUT,
                format!("{base}/runtime"),
                Body::Json(json!({ "limits": limits, "max_concurrency": conc })),
            );
        }
    }

    // Topics.
    let topics = read("/topics").await?;
    let have: BTreeMap<&str, &Value> = list(&topics, "topics")
        .into_iter()
        .filter_map(|t| Some((t["name"].as_str()?, t)))
        .collect();
    let wanted: BTreeSet<&str> = m.topics.iter().map(|t| t.name.as_str()).collect();
    for t in &m.topics {
        let mut fields = serde_json::Map::new();
        let server = have.get(t.name.as_str());
        let differs = |key: &str, v: Value| server.is_none_or(|s| s[key] != v);
        if let Some(d) = &t.description {
            if differs("description", json!(d)) {
                fields.insert("description".into(), json!(d));
            }
        }
        if let Some(a) = &t.auth_mode {
            if differs("auth_mode", json!(a)) {
                fields.insert("auth_mode".into(), json!(a));
            }
        }
        for (key, wanted) in [
            ("external_subscribable", t.external_subscribable),
            ("client_publish", t.client_publish),
            ("presence", t.presence),
        ] {
            if let Some(v) = wanted {
                if differs(key, json!(v)) {
                    fields.insert(key.into(), json!(v));
                }
            }
        }
        if let Some(r) = &t.retention {
            let want = json!({ "max_messages": r.max_messages, "max_age_secs": r.max_age_secs });
            if differs("retention", want.clone()) {
                fields.insert("retention".into(), want);
            }
        }
        match server {
            None => {
                fields.insert("name".into(), json!(t.name));
                plan.add(
                    format!("+ topic {}", t.name),
                    Method::POST,
                    format!("{base}/topics"),
                    Body::Json(Value::Object(fields)),
                );
            }
            Some(_) if !fields.is_empty() => {
                let keys: Vec<_> = fields.keys().cloned().collect();
                plan.add(
                    format!("~ topic {}: {}", t.name, keys.join(", ")),
                    Method::PATCH,
                    format!("{base}/topics/{}", t.name),
                    Body::Json(Value::Object(fields)),
                );
            }
            Some(_) => {}
        }
    }

    // Scripts: a changed source is deployed as the next version.
    let scripts = read("/scripts").await?;
    let have_scripts: BTreeSet<String> = list(&scripts, "scripts")
        .into_iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    for (name, source) in sources {
        let active = if have_scripts.contains(name) {
            read(&format!("/scripts/{name}")).await?.and_then(|d| {
                let v = d["active_version"].clone();
                d["versions"]
                    .as_array()?
                    .iter()
                    .find(|x| x["version"] == v)
                    .and_then(|x| x["source"].as_str().map(str::to_owned))
            })
        } else {
            None
        };
        if active.as_deref() != Some(source.as_str()) {
            let sign = if have_scripts.contains(name) {
                "~"
            } else {
                "+"
            };
            plan.add(
                format!("{sign} script {name} (a new version)"),
                Method::POST,
                format!("{base}/scripts"),
                Body::Json(json!({ "name": name, "source": source })),
            );
        }
    }

    // Routes: known by method and path; one pointing at another script is replaced.
    let routes = read("/routes").await?;
    let routes_now = have_routes(&routes);
    let mut wanted_routes = BTreeSet::new();
    for r in &m.routes {
        let key = (r.method.to_ascii_uppercase(), r.path.clone());
        wanted_routes.insert(key.clone());
        let create = Step {
            what: format!("+ route {} {} → {}", key.0, r.path, r.script),
            method: Method::POST,
            path: format!("{base}/routes"),
            body: Body::Json(json!({ "method": key.0, "path": r.path, "script": r.script })),
        };
        match routes_now.get(&key) {
            None => plan.steps.push(create),
            Some((script, _)) if *script == r.script => {}
            Some((script, id)) => {
                plan.add(
                    format!(
                        "- route {} {} → {script} (now → {})",
                        key.0, r.path, r.script
                    ),
                    Method::DELETE,
                    format!("{base}/routes/{id}"),
                    Body::None,
                );
                plan.steps.push(create);
            }
        }
    }

    // Triggers: known by kind, script and filter; `enabled` and `retry` are settings.
    let triggers = read("/triggers").await?;
    let have_triggers = list(&triggers, "triggers");
    let mut matched = BTreeSet::new();
    for t in &m.triggers {
        let filter = manifest::json(&t.filter);
        let label = format!("{} trigger → {} {filter}", t.kind, t.script);
        let found = have_triggers.iter().find(|s| {
            s["kind"] == t.kind.as_str()
                && s["script"] == t.script.as_str()
                && same_filter(&filter, &s["filter"])
        });
        let retry = t.retry.map(|r| {
            json!({ "max_attempts": r.max_attempts, "base_delay_ms": r.base_delay_ms, "max_delay_ms": r.max_delay_ms })
        });
        match found {
            None => {
                let mut body = json!({ "kind": t.kind, "script": t.script, "filter": filter, "enabled": t.enabled });
                if let Some(r) = retry {
                    body["retry"] = r;
                }
                plan.add(
                    format!("+ {label}"),
                    Method::POST,
                    format!("{base}/triggers"),
                    Body::Json(body),
                );
            }
            Some(s) => {
                matched.insert(s["id"].as_str().unwrap_or_default().to_owned());
                let mut patch = serde_json::Map::new();
                if s["enabled"] != t.enabled {
                    patch.insert("enabled".into(), json!(t.enabled));
                }
                if let Some(r) = retry.filter(|r| s["retry"] != *r) {
                    patch.insert("retry".into(), r);
                }
                if !patch.is_empty() {
                    let keys: Vec<_> = patch.keys().cloned().collect();
                    plan.add(
                        format!("~ {label}: {}", keys.join(", ")),
                        Method::PATCH,
                        format!("{base}/triggers/{}", s["id"].as_str().unwrap_or_default()),
                        Body::Json(Value::Object(patch)),
                    );
                }
            }
        }
    }

    // Static files, by content.
    let listed = read("/static").await?;
    let have: BTreeMap<&str, &str> = list(&listed, "files")
        .into_iter()
        .filter_map(|f| Some((f["path"].as_str()?, f["sha256"].as_str()?)))
        .collect();
    for f in statics {
        match have.get(f.path.as_str()) {
            Some(sha) if *sha == f.sha256 => {}
            found => plan.add(
                format!(
                    "{} static {} ({} bytes)",
                    if found.is_some() { "~" } else { "+" },
                    f.path,
                    f.bytes.len()
                ),
                Method::PUT,
                format!("{base}/static/{}", f.path),
                Body::Bytes(f.bytes.clone()),
            ),
        }
    }

    // Env values are never in a manifest: say which the scripts will miss.
    let env = read("/env").await?;
    for name in &m.env {
        let set = env.as_ref().is_some_and(|e| e["env"].get(name).is_some());
        if !set {
            plan.notes.push(format!(
                "env {name} is not set: PUT /api/v1/apps/{slug}/env/{name} (never in the manifest)"
            ));
        }
    }

    if prune {
        // Routes and triggers before the scripts they name.
        for ((method, path), (script, id)) in &routes_now {
            if !wanted_routes.contains(&(method.clone(), path.clone())) {
                plan.add(
                    format!("- route {method} {path} → {script}"),
                    Method::DELETE,
                    format!("{base}/routes/{id}"),
                    Body::None,
                );
            }
        }
        for s in &have_triggers {
            let id = s["id"].as_str().unwrap_or_default();
            if !matched.contains(id) {
                plan.add(
                    format!(
                        "- {} trigger → {} {}",
                        s["kind"].as_str().unwrap_or_default(),
                        s["script"].as_str().unwrap_or_default(),
                        s["filter"]
                    ),
                    Method::DELETE,
                    format!("{base}/triggers/{id}"),
                    Body::None,
                );
            }
        }
        for name in have_scripts.iter().filter(|n| !sources.contains_key(*n)) {
            plan.add(
                format!("- script {name}"),
                Method::DELETE,
                format!("{base}/scripts/{name}"),
                Body::None,
            );
        }
        for t in list(&topics, "topics") {
            let name = t["name"].as_str().unwrap_or_default();
            if !wanted.contains(name) {
                plan.add(
                    format!("- topic {name}"),
                    Method::DELETE,
                    format!("{base}/topics/{name}"),
                    Body::None,
                );
            }
        }
        for d in list(&domains, "domains") {
            let host = d["host"].as_str().unwrap_or_default();
            if !m.domains.iter().any(|h| h == host) {
                plan.add(
                    format!("- domain {host}"),
                    Method::DELETE,
                    format!("{base}/domains/{}", d["id"].as_str().unwrap_or_default()),
                    Body::None,
                );
            }
        }
        let local: BTreeSet<&str> = statics.iter().map(|f| f.path.as_str()).collect();
        for f in list(&listed, "files") {
            let path = f["path"].as_str().unwrap_or_default();
            if !local.contains(path) {
                plan.add(
                    format!("- static {path}"),
                    Method::DELETE,
                    format!("{base}/static/{path}"),
                    Body::None,
                );
            }
        }
    }
    Ok(plan)
}

fn have_routes(routes: &Option<Value>) -> BTreeMap<(String, String), (String, String)> {
    list(routes, "routes")
        .into_iter()
        .filter_map(|r| {
            Some((
                (
                    r["method"].as_str()?.to_owned(),
                    r["path"].as_str()?.to_owned(),
                ),
                (
                    r["script"].as_str()?.to_owned(),
                    r["id"].as_str()?.to_owned(),
                ),
            ))
        })
        .collect()
}

/// Writes the manifest of an existing app: `DIR/picloud.toml`, each script's active
/// source as `DIR/scripts/NAME.rhai`, the static site under `DIR/static/`. Env values are
/// left out (their names are listed).
pub async fn export(args: AppExportArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(&args.server);
    let base = format!("/apps/{}", args.slug);
    let app = api
        .get_opt(&base)
        .await?
        .with_context(|| format!("no app {:?} on the server", args.slug))?;
    let file = args.dir.join(manifest::FILE);
    if file.exists() && !args.force {
        bail!("{} exists (--force overwrites)", file.display());
    }
    let slug = app["slug"].as_str().unwrap_or(&args.slug).to_owned();
    let get = |p: &str| {
        let path = format!("{base}{p}");
        let api = &api;
        async move { api.get(&path).await }
    };
    let mut m = Manifest {
        slug: slug.clone(),
        name: app["name"]
            .as_str()
            .filter(|n| *n != slug)
            .map(str::to_owned),
        domains: Vec::new(),
        static_dir: None,
        spa: app["static_spa"] == true,
        env: Vec::new(),
        runtime: None,
        topics: Vec::new(),
        scripts: BTreeMap::new(),
        routes: Vec::new(),
        triggers: Vec::new(),
    };
    for d in get("/domains").await?["domains"]
        .as_array()
        .into_iter()
        .flatten()
    {
        m.domains.extend(d["host"].as_str().map(str::to_owned));
    }
    let rt = get("/runtime").await?;
    let limits = manifest::table(&rt["limits"]);
    m.runtime = Some(manifest::Runtime {
        limits,
        max_concurrency: rt["max_concurrency"].as_u64().map(|c| c as u32),
    });
    for t in get("/topics").await?["topics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        m.topics.push(manifest::Topic {
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            description: t["description"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            auth_mode: t["auth_mode"].as_str().map(str::to_owned),
            external_subscribable: t["external_subscribable"].as_bool(),
            retention: Some(manifest::Retention {
                max_messages: t["retention"]["max_messages"].as_i64(),
                max_age_secs: t["retention"]["max_age_secs"].as_i64(),
            }),
            client_publish: t["client_publish"].as_bool().filter(|on| *on),
            presence: t["presence"].as_bool().filter(|on| *on),
        });
    }
    let scripts_dir = args.dir.join("scripts");
    for s in get("/scripts").await?["scripts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = s["name"].as_str().unwrap_or_default().to_owned();
        let detail = get(&format!("/scripts/{name}")).await?;
        let active = detail["active_version"].clone();
        let source = detail["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["version"] == active))
            .and_then(|x| x["source"].as_str())
            .unwrap_or_default()
            .to_owned();
        std::fs::create_dir_all(&scripts_dir)?;
        let rel = PathBuf::from("scripts").join(format!("{name}.rhai"));
        std::fs::write(args.dir.join(&rel), source)?;
        m.scripts.insert(name, rel);
    }
    for r in get("/routes").await?["routes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        m.routes.push(manifest::Route {
            method: r["method"].as_str().unwrap_or_default().to_owned(),
            path: r["path"].as_str().unwrap_or_default().to_owned(),
            script: r["script"].as_str().unwrap_or_default().to_owned(),
        });
    }
    for t in get("/triggers").await?["triggers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let retry = &t["retry"];
        m.triggers.push(manifest::Trigger {
            kind: t["kind"].as_str().unwrap_or_default().to_owned(),
            script: t["script"].as_str().unwrap_or_default().to_owned(),
            filter: manifest::table(&t["filter"]),
            enabled: t["enabled"].as_bool().unwrap_or(true),
            retry: Some(manifest::Retry {
                max_attempts: retry["max_attempts"].as_u64().unwrap_or(5) as u32,
                base_delay_ms: retry["base_delay_ms"].as_i64().unwrap_or(1000),
                max_delay_ms: retry["max_delay_ms"].as_i64().unwrap_or(60_000),
            }),
        });
    }
    m.env = get("/env").await?["env"]
        .as_object()
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default();
    let files = get("/static").await?;
    let files = files["files"].as_array().cloned().unwrap_or_default();
    if !files.is_empty() {
        m.static_dir = Some(PathBuf::from("static"));
        for f in &files {
            let path = f["path"].as_str().unwrap_or_default();
            let bytes = api
                .send(Method::GET, &format!("{base}/static/{path}"), Body::None)
                .await?;
            let out = args.dir.join("static").join(path);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(out, bytes)?;
        }
    }
    std::fs::create_dir_all(&args.dir)?;
    std::fs::write(&file, m.to_toml()?)?;
    eprintln!(
        "Exported {slug} to {}: {} topics, {} scripts, {} routes, {} triggers, {} static files{}",
        args.dir.display(),
        m.topics.len(),
        m.scripts.len(),
        m.routes.len(),
        m.triggers.len(),
        files.len(),
        if m.env.is_empty() {
            String::new()
        } else {
            format!("; env names only ({}), never values", m.env.join(", "))
        }
    );
    Ok(())
}
