//! The exports natively: the envelope each answers, and that each gives the server's
//! verdict (the wasm build's agreement with these is the client's agreement test).

use picloud_wasm::{check_script, cron_next, topic_pattern_matches, validate_topic};
use picloud_wasm::{validate_trigger_filter, MAX_CRON_TIMES};
use serde_json::{json, Value};

fn parse(s: String) -> Value {
    serde_json::from_str(&s).expect("an export answers JSON")
}

#[test]
fn check_script_answers_diagnostics_under_the_given_limits() {
    assert_eq!(parse(check_script("let x = 1;\nx", "")), json!({"ok": []}));
    let d = parse(check_script("let x = 1;\nlet = 2;", ""));
    assert_eq!(d["ok"][0]["line"], 2, "{d}");
    assert_eq!(d["ok"][0]["severity"], "error");
    assert!(d["ok"][0]["column"].as_u64().unwrap() >= 1);
    let eval = parse(check_script("eval(\"1\")", ""));
    assert!(eval["ok"][0]["message"].as_str().unwrap().contains("eval"));

    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(
        parse(check_script(&nested, ""))
            .get("ok")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        parse(check_script(&nested, r#"{"max_expr_depth": 256}"#)),
        json!({"ok": []})
    );
    let bad = parse(check_script("1", r#"{"max_expr_depth": 100000}"#));
    assert_eq!(bad["error"]["field"], "limits", "{bad}");
    let unknown = parse(check_script("1", r#"{"speed": 1}"#));
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("speed"));
    assert_eq!(
        parse(check_script("1", "{oops"))["error"]["field"],
        "limits"
    );
}

#[test]
fn topics_and_patterns_are_judged_as_the_server_judges_them() {
    assert_eq!(parse(validate_topic("chat.room-1")), json!({"ok": null}));
    for bad in ["", "a..b", "chat.*", "a b", &"x".repeat(129)] {
        let e = parse(validate_topic(bad));
        assert_eq!(e["error"]["field"], "topic", "{bad:?}: {e}");
    }
    assert_eq!(
        parse(topic_pattern_matches("chat.*", "chat.a")),
        json!({"ok": true})
    );
    assert_eq!(
        parse(topic_pattern_matches("chat.*", "chat")),
        json!({"ok": false})
    );
    assert_eq!(
        parse(topic_pattern_matches("chat", "chat")),
        json!({"ok": true})
    );
    assert_eq!(
        parse(topic_pattern_matches("chat", "chat.a")),
        json!({"ok": false})
    );
    assert_eq!(
        parse(topic_pattern_matches("a..*", "a.b"))["error"]["field"],
        "topic"
    );
}

#[test]
fn cron_next_lists_the_coming_fire_times() {
    // 2026-12-07T00:00:00Z, a Monday.
    let monday = 1_796_601_600_000.0;
    assert_eq!(
        parse(cron_next("0 12 * * *", monday, 2)),
        json!({"ok": [1_796_644_800_000_i64, 1_796_731_200_000_i64]})
    );
    assert_eq!(
        parse(cron_next("*/20 * * * * *", 0.0, 3)),
        json!({"ok": [20_000, 40_000, 60_000]})
    );
    let e = parse(cron_next("61 * * * *", monday, 5));
    assert_eq!(e["error"]["field"], "filter.schedule", "{e}");
    assert_eq!(
        parse(cron_next("* * *", monday, 5))["error"]["field"],
        "filter.schedule"
    );
    assert_eq!(
        parse(cron_next("* * * * *", f64::NAN, 5))["error"]["field"],
        "fromMillis"
    );
    assert_eq!(
        parse(cron_next("* * * * *", 0.0, MAX_CRON_TIMES + 1))["error"]["field"],
        "n"
    );
}

#[test]
fn trigger_filters_are_judged_as_creating_the_trigger_would() {
    let ok = json!({"ok": null});
    assert_eq!(
        parse(validate_trigger_filter(
            "pubsub",
            r#"{"topic": "orders.*"}"#
        )),
        ok
    );
    assert_eq!(parse(validate_trigger_filter("kv", "{}")), ok);
    assert_eq!(parse(validate_trigger_filter("dead_letter", "null")), ok);
    assert_eq!(
        parse(validate_trigger_filter(
            "cron",
            r#"{"schedule": "*/5 * * * *"}"#
        )),
        ok
    );
    let missing = parse(validate_trigger_filter("cron", "{}"));
    assert_eq!(missing["error"]["field"], "filter", "{missing}");
    let unknown = parse(validate_trigger_filter("kv", r#"{"topic": "x"}"#));
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("topic"));
    assert_eq!(
        parse(validate_trigger_filter("webhook", "{}"))["error"]["field"],
        "kind"
    );
    assert_eq!(
        parse(validate_trigger_filter("kv", "[1"))["error"]["field"],
        "filter"
    );
}
