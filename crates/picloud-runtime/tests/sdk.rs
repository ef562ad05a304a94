//! Every SDK function once against the in-memory host.

mod common;

use common::*;
use picloud_runtime::{ErrorKind, Input, Limits, LogLevel};
use serde_json::{json, Value};

fn run_on(host: &std::sync::Arc<MemHost>, source: &str) -> Value {
    let outcome = run_with(
        source,
        Input::Request(Value::Null),
        host.clone(),
        &Limits::default(),
    );
    outcome
        .result
        .unwrap_or_else(|e| panic!("script failed ({:?}): {}", e.kind, e.message))
}

#[test]
fn kv_functions() {
    let host = MemHost::new();
    let result = run_on(
        &host,
        r#"
        let missing = kv::get("nope");
        kv::set("a", #{n: 1, list: [1, 2.5, "x"]});
        kv::set("b", 2, 60);
        kv::set("other", true);
        let a = kv::get("a");
        let listed = kv::list("");
        let limited = kv::list("", 1);
        let prefixed = kv::list("b");
        #{
            missing: missing,
            a: a,
            deleted: kv::delete("other"),
            deleted_again: kv::delete("other"),
            listed: listed.len(),
            limited: limited,
            prefixed: prefixed,
        }
        "#,
    );
    assert_eq!(
        result,
        json!({
            "missing": null,
            "a": {"n": 1, "list": [1, 2.5, "x"]},
            "deleted": true,
            "deleted_again": false,
            "listed": 3,
            "limited": [{"key": "a", "value": {"n": 1, "list": [1, 2.5, "x"]}}],
            "prefixed": [{"key": "b", "value": 2}],
        })
    );
    let kv = host.kv.lock().unwrap();
    assert_eq!(kv["b"], (json!(2), Some(60)));
    assert_eq!(kv["a"].1, None);
}

#[test]
fn kv_argument_errors_are_catchable() {
    let host = MemHost::new();
    let result = run_on(
        &host,
        r#"
        let errors = [];
        try { kv::set("k", 1, 0) } catch (e) { errors.push(e) }
        try { kv::list("", 0) } catch (e) { errors.push(e) }
        errors
        "#,
    );
    assert_eq!(
        result,
        json!([
            "kv::set: ttl_secs must be a positive integer, got 0",
            "kv::list: limit must be a positive integer, got 0"
        ])
    );
}

#[test]
fn docs_functions() {
    let host = MemHost::new();
    let result = run_on(
        &host,
        r#"
        let id = docs::insert("users", #{name: "ada", age: 36});
        docs::insert("users", #{name: "bob", age: 36});
        docs::insert("users", #{name: "cy", age: 7});
        let got = docs::get("users", id);
        let updated = docs::update("users", id, #{name: "ada", age: 37});
        let not_updated = docs::update("users", "missing", #{});
        let adults = docs::find("users", #{age: 36});
        let one = docs::find("users", #{}, 1);
        #{
            id: id,
            got: got,
            missing: docs::get("users", "missing"),
            updated: updated,
            not_updated: not_updated,
            after_update: docs::get("users", id).age,
            adults: adults.len(),
            one: one.len(),
            deleted: docs::delete("users", id),
            deleted_again: docs::delete("users", id),
        }
        "#,
    );
    assert_eq!(
        result,
        json!({
            "id": "d1",
            "got": {"_id": "d1", "name": "ada", "age": 36},
            "missing": null,
            "updated": true,
            "not_updated": false,
            "after_update": 37,
            "adults": 1,
            "one": 1,
            "deleted": true,
            "deleted_again": false,
        })
    );
}

#[test]
fn files_functions() {
    let host = MemHost::new();
    let result = run_on(
        &host,
        r#"
        files::put("notes/a.txt", "héllo");
        let b = blob(3, 0xff);
        files::put("bin/b", b);
        files::put("bad.txt", blob(1, 0xff));
        let listed = files::list("notes/");
        let err = "";
        try { files::get_text("bad.txt") } catch (e) { err = e }
        let bad_put = "";
        try { files::put("x", 42) } catch (e) { bad_put = e }
        #{
            text: files::get_text("notes/a.txt"),
            bytes: files::get("bin/b"),
            missing: files::get("nope"),
            missing_text: files::get_text("nope"),
            listed: listed,
            not_utf8: err,
            bad_put: bad_put,
            deleted: files::delete("bin/b"),
            deleted_again: files::delete("bin/b"),
        }
        "#,
    );
    assert_eq!(
        result,
        json!({
            "text": "héllo",
            "bytes": [255, 255, 255],
            "missing": null,
            "missing_text": null,
            "listed": [{"path": "notes/a.txt", "size": 6, "updated_at": 1_700_000_000_000i64}],
            "not_utf8": "files::get_text: 'bad.txt' is not valid UTF-8 text; use files::get for binary content",
            "bad_put": "files::put: content must be a string or a blob, got i64",
            "deleted": true,
            "deleted_again": false,
        })
    );
    assert_eq!(
        host.files.lock().unwrap()["notes/a.txt"],
        "héllo".as_bytes()
    );
}

#[test]
fn pubsub_functions() {
    let host = MemHost::new();
    let result = run_on(
        &host,
        r#"
        let s1 = pubsub::publish("orders", #{id: 1});
        let s2 = pubsub::publish("orders", "second");
        pubsub::publish_ephemeral("typing", #{user: "ada"});
        let t1 = pubsub::subscriber_token(["orders", "typing"], 300);
        let t2 = pubsub::subscriber_token(["orders"], 60, "user-7");
        let bad = "";
        try { pubsub::subscriber_token([1], 60) } catch (e) { bad = e }
        [s1, s2, t1, t2, bad]
        "#,
    );
    assert_eq!(
        result,
        json!([
            1,
            2,
            "tok:orders,typing:300:-",
            "tok:orders:60:user-7",
            "pubsub::subscriber_token: topics must be strings, got i64"
        ])
    );
    let published = host.published.lock().unwrap();
    assert_eq!(
        *published,
        vec![
            ("orders".to_string(), json!({"id": 1}), true),
            ("orders".to_string(), json!("second"), true),
            ("typing".to_string(), json!({"user": "ada"}), false),
        ]
    );
    assert_eq!(host.tokens.lock().unwrap()[1].2.as_deref(), Some("user-7"));
}

#[test]
fn env_functions() {
    assert_eq!(
        ok(r#"[env::get("GREETING"), env::get("UNSET")]"#),
        json!(["hello", null])
    );
}

#[test]
fn time_functions() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let result = ok("[time::now_ms(), time::now_secs(), time::now_iso()]");
    let ms = result[0].as_i64().unwrap();
    let secs = result[1].as_i64().unwrap();
    let iso = result[2].as_str().unwrap();
    assert!(ms >= before && ms < before + 10_000, "{ms} vs {before}");
    assert!((secs - ms / 1000).abs() <= 1);
    assert_eq!(iso.len(), "2024-01-01T00:00:00.000Z".len(), "{iso}");
    assert!(iso.starts_with("20") && iso.ends_with('Z'), "{iso}");
}

#[test]
fn log_functions_and_print_debug_are_captured() {
    let outcome = run_src(
        r#"
        log::dbg("d"); log::info(42); log::warn(#{a: 1}); log::error([1, 2]);
        print("printed"); debug("debugged");
        "#,
    );
    assert_eq!(outcome.result.unwrap(), Value::Null);
    let lines: Vec<(LogLevel, &str)> = outcome
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LogLevel::Debug, "d"),
            (LogLevel::Info, "42"),
            (LogLevel::Warn, "#{\"a\": 1}"),
            (LogLevel::Error, "[1, 2]"),
            (LogLevel::Info, "printed"),
            (LogLevel::Debug, "\"debugged\""),
        ]
    );
    let json = serde_json::to_value(&outcome.logs[0]).unwrap();
    assert_eq!(json["level"], "debug");
}

#[test]
fn logs_are_bounded_with_a_dropped_notice() {
    let limits = Limits {
        max_log_lines: 10,
        ..Limits::default()
    };
    let outcome = run_limited("for i in 0..50 { log::info(i) } print(\"last\")", limits);
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.logs.len(), 10);
    assert_eq!(outcome.logs[8].message, "8");
    let last = &outcome.logs[9];
    assert_eq!(last.level, LogLevel::Warn);
    assert_eq!(
        last.message,
        "42 log line(s) dropped: the limit is 10 lines per run"
    );
}

#[test]
fn long_log_lines_are_truncated() {
    let outcome = run_src("let s = \"é\"; while s.len < 4096 { s += s; } log::info(s); print(s);");
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.logs.len(), 2);
    for line in &outcome.logs {
        assert!(line.message.len() <= picloud_runtime::MAX_LOG_LINE_BYTES);
        assert!(
            line.message.ends_with("é…"),
            "{}",
            &line.message[line.message.len() - 10..]
        );
    }
}

#[test]
fn host_errors_are_catchable_with_the_host_message() {
    let outcome = run_src(
        r#"
        let caught = ();
        try { kv::get("fail") } catch (e) { caught = e }
        caught
        "#,
    );
    assert_eq!(outcome.result.unwrap(), json!("host refused 'fail'"));
}

#[test]
fn uncaught_host_errors_are_runtime_errors_with_a_position() {
    let message = err(run_src("let x = 1;\nkv::get(\"fail\")"), ErrorKind::Runtime);
    assert_eq!(message, "host refused 'fail' (line 2, column 5)");
    let message = err(run_src("docs::insert(\"fail\", #{})"), ErrorKind::Runtime);
    assert!(message.starts_with("host refused 'fail'"), "{message}");
}

#[test]
fn values_too_deep_for_json_are_refused_by_the_sdk() {
    let source = "fn nest(n) { if n == 0 { [] } else { [[[[[[[[[[nest(n - 1)]]]]]]]]]] } }
                  let msg = ();
                  try { kv::set(\"k\", nest(11)) } catch (e) { msg = e }
                  msg";
    let result = ok(source);
    assert_eq!(
        result,
        json!("kv::set: value is nested more than 100 levels deep")
    );
}
