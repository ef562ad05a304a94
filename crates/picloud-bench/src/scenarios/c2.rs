//! C2: what the cluster relay costs one node. S4 (10,000 subscribers, one per topic;
//! `--s4-publishers` connections publishing round-robin as fast as they can) on one PiCloud
//! on a fresh PostgreSQL database, twice in one run: relay off (no `REDIS_URL`), then on
//! (`REDIS_URL` = a private redis-server, `PICLOUD_NODE_ID` = n1). With the relay on, every
//! committed message is also sent to Redis, and the node's relay subscribes to every topic
//! it has subscribers for (10,000 channels), so Redis sends each frame back to it as well:
//! a one-node cluster pays the whole sending side and the receiving side's filtering.
//! Reported: both S4 results, each node's `/health/realtime` after its run, and on/off
//! ratios of deliveries/s and server CPU per delivery.

use serde_json::{json, Map, Value};

use anyhow::Result;

use super::{c1, finish, s4, Ctx};
use crate::publisher::round3;
use crate::redis::Redis;
use crate::server::{Backend, Data};

pub async fn run(ctx: &Ctx) -> Result<Value> {
    let redis = Redis::start()?;
    let url = redis.url();
    let mut out = Map::new();
    for (name, relay) in [("relay_off", false), ("relay_on", true)] {
        crate::progress!("  c2 {name}: S4 on one PiCloud on PostgreSQL");
        let env: &[(&str, &str)] = if relay {
            &[("REDIS_URL", &url), ("PICLOUD_NODE_ID", "n1")]
        } else {
            &[]
        };
        let server = ctx
            .start_picloud(Data::Fresh(Backend::Postgres), env, None)
            .await?;
        let r = s4::body(ctx, &server).await;
        let health = c1::health(&server.endpoint).await;
        let mut v = finish(r, server).await?;
        v["health"] = health.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
        out.insert(name.into(), v);
    }
    let mut v = Value::Object(out);
    v["ratios_on_over_off"] = ratios(&v);
    v["redis"] = json!(url);
    Ok(v)
}

/// relay on / relay off for each S4 run's deliveries/s (<1: the relay costs throughput)
/// and server CPU per delivery (>1: it costs CPU).
fn ratios(v: &Value) -> Value {
    let mut out = Map::new();
    let runs = v["relay_off"]["runs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for run in runs.keys() {
        for figure in ["deliveries_per_sec", "server_cpu_us_per_delivery"] {
            let off = v["relay_off"]["runs"][run][figure].as_f64();
            let on = v["relay_on"]["runs"][run][figure].as_f64();
            let ratio = match (on, off) {
                (Some(on), Some(off)) if off != 0.0 => json!(round3(on / off)),
                _ => Value::Null,
            };
            out.insert(format!("{run}_{figure}"), ratio);
        }
    }
    Value::Object(out)
}
