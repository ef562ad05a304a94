//! Running scripts: inputs, results, errors, panics.

mod common;

use std::sync::Arc;

use common::*;
use picloud_runtime::{compile, into_http_response, run, Body, ErrorKind, Input, Limits, RunError};
use serde_json::{json, Value};

#[test]
fn request_is_in_scope() {
    let request = json!({"method": "POST", "path": "/hello", "body": {"name": "ada"}, "query": {}});
    let outcome = run_with(
        "`hello ${request.body.name} via ${request.method}`",
        Input::Request(request),
        MemHost::new(),
        &Limits::default(),
    );
    assert_eq!(outcome.result.unwrap(), json!("hello ada via POST"));
}

#[test]
fn event_is_in_scope_and_request_is_not() {
    let event = json!({"topic": "orders", "message": {"id": 7}, "seq": 3});
    let outcome = run_with(
        "event.message.id * 10 + event.seq",
        Input::Event(event.clone()),
        MemHost::new(),
        &Limits::default(),
    );
    assert_eq!(outcome.result.unwrap(), json!(73));
    let outcome = run_with(
        "request",
        Input::Event(event),
        MemHost::new(),
        &Limits::default(),
    );
    let message = err(outcome, ErrorKind::Runtime);
    assert!(message.contains("Variable not found: request"), "{message}");
}

#[test]
fn input_round_trips_through_the_script() {
    let value = json!({
        "null": null, "bool": true, "int": -7, "big": i64::MAX, "float": 2.5, "whole_float": 3.0,
        "text": "ünïcode", "nested": {"list": [1, [2, {"deep": null}], "x"], "empty_map": {}, "empty_list": []}
    });
    let outcome = run_with(
        "request",
        Input::Request(value.clone()),
        MemHost::new(),
        &Limits::default(),
    );
    assert_eq!(outcome.result.unwrap(), value);
}

#[test]
fn ints_and_floats_are_distinct_in_scripts() {
    let outcome = run_with(
        "[type_of(request.i), type_of(request.f), request.i / 2, request.f / 2]",
        Input::Request(json!({"i": 3, "f": 3.0})),
        MemHost::new(),
        &Limits::default(),
    );
    assert_eq!(outcome.result.unwrap(), json!(["i64", "f64", 1, 1.5]));
}

#[test]
fn script_values_convert_to_json() {
    assert_eq!(ok("let x = 1;"), Value::Null);
    assert_eq!(ok("()"), Value::Null);
    assert_eq!(ok("'c'"), json!("c"));
    assert_eq!(ok("blob(2, 7)"), json!([7, 7]));
    assert_eq!(ok("1.0 / 0.0"), Value::Null);
    assert_eq!(
        ok("#{b: [1, 2.5, true, ()], a: #{}}"),
        json!({"a": {}, "b": [1, 2.5, true, null]})
    );
    assert_eq!(ok("let f = |x| x; Fn(\"abs\")"), json!("Fn(abs)"));
    // Closure-captured (shared) values are read through.
    assert_eq!(ok("let x = [1]; let f = || x; x.push(2); x"), json!([1, 2]));
}

#[test]
fn throw_is_reported_as_thrown() {
    let message = err(run_src("let a = 1;\nthrow \"boom\";"), ErrorKind::Thrown);
    assert_eq!(message, "boom (line 2, column 1)");
    let message = err(
        run_src("fn check(x) { if x > 1 { throw `too big: ${x}` } }\ncheck(5)"),
        ErrorKind::Thrown,
    );
    assert_eq!(
        message,
        "too big: 5 (line 1, column 26, in function 'check')"
    );
    let message = err(run_src("throw #{code: 42}"), ErrorKind::Thrown);
    assert!(message.contains("\"code\": 42"), "{message}");
}

#[test]
fn thrown_values_can_be_caught() {
    assert_eq!(
        ok("let r = 0; try { throw 41 } catch (e) { r = e + 1 } r"),
        json!(42)
    );
}

#[test]
fn runtime_errors_carry_the_position() {
    let message = err(run_src("let a = [1, 2];\n\n  a[5]"), ErrorKind::Runtime);
    assert!(message.contains("out of bounds"), "{message}");
    assert!(message.ends_with("(line 3, column 5)"), "{message}");
    let message = err(run_src("1 / 0"), ErrorKind::Runtime);
    assert!(message.starts_with("Division by zero"), "{message}");
}

#[test]
fn panicking_host_is_contained_and_the_thread_stays_usable() {
    let host = MemHost::new();
    let script = compile("kv::get(\"panic\")").unwrap();
    let outcome = run(
        &script,
        Input::Request(Value::Null),
        host.clone(),
        &Limits::default(),
    );
    let Err(RunError { kind, message }) = outcome.result else {
        panic!("expected a panic error");
    };
    assert_eq!(kind, ErrorKind::Panic);
    assert_eq!(message, "internal error: the script runtime panicked");
    // Same thread, same host: the next run works.
    let script = compile("kv::set(\"k\", 1); kv::get(\"k\") + 1").unwrap();
    let outcome = run(
        &script,
        Input::Request(Value::Null),
        host,
        &Limits::default(),
    );
    assert_eq!(outcome.result.unwrap(), json!(2));
}

#[test]
fn logs_before_a_panic_are_kept() {
    let outcome = run_src("print(\"before\"); kv::get(\"panic\")");
    assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Panic);
    assert_eq!(outcome.logs.len(), 1);
    assert_eq!(outcome.logs[0].message, "before");
}

#[test]
fn a_compiled_script_is_reused_across_runs_and_threads() {
    let script = compile("request.n * 2").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let script = script.clone();
            std::thread::spawn(move || {
                let outcome = run(
                    &script,
                    Input::Request(json!({"n": n})),
                    MemHost::new(),
                    &Limits::default(),
                );
                outcome.result.unwrap()
            })
        })
        .collect();
    let results: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, vec![json!(0), json!(2), json!(4), json!(6)]);
}

#[test]
fn endpoint_result_becomes_a_response() {
    let outcome = run_src(r#"#{status: 201, headers: #{"x-id": "7"}, body: #{ok: true}}"#);
    let response = into_http_response(outcome.result.unwrap()).unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.header("x-id"), Some("7"));
    assert_eq!(response.body, Body::Json(json!({"ok": true})));
}

#[test]
fn run_errors_serialize_for_the_api() {
    let error = run_src("throw 1").result.unwrap_err();
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json["kind"], "thrown");
    let error = run_limited(
        "loop {}",
        Limits {
            max_operations: 10,
            ..Limits::default()
        },
    )
    .result
    .unwrap_err();
    assert_eq!(
        serde_json::to_value(&error).unwrap()["kind"],
        "operations_limit"
    );
}

#[test]
fn host_is_shared_not_consumed() {
    let host = MemHost::new();
    let dyn_host: Arc<dyn picloud_runtime::Host> = host.clone();
    let script = compile("kv::set(\"x\", 5)").unwrap();
    let _ = run(
        &script,
        Input::Request(Value::Null),
        dyn_host,
        &Limits::default(),
    );
    assert_eq!(host.kv.lock().unwrap()["x"].0, json!(5));
}

#[test]
fn sdk_reference_examples_compile_and_run() {
    let doc = include_str!("../../../docs/scripts.md");
    let blocks: Vec<&str> = doc
        .split("```rhai\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 5);
    for block in &blocks {
        compile(block).unwrap_or_else(|e| panic!("{e} in:\n{block}"));
    }
    let host = MemHost::new();
    let request = json!({"method": "GET", "path": "/items/x", "params": {"id": "x"}, "query": {}, "headers": {}, "body": "", "json": null});
    let first = run_with(
        blocks[0],
        Input::Request(request.clone()),
        host.clone(),
        &Limits::default(),
    );
    assert_eq!(first.result.unwrap(), json!({"greeting": "hello world"}));
    let response = run_with(
        blocks[2],
        Input::Request(request),
        host.clone(),
        &Limits::default(),
    );
    let response = into_http_response(response.result.unwrap()).unwrap();
    assert_eq!(response.status, 404);
    for expected in 1..=2 {
        let counter = run_with(
            blocks[3],
            Input::Request(Value::Null),
            host.clone(),
            &Limits::default(),
        );
        assert_eq!(counter.result.unwrap(), json!({"visits": expected}));
    }
    let event = json!({"message": {"id": "o1", "total": 1500}});
    let forwarded = run_with(
        blocks[4],
        Input::Event(event),
        host.clone(),
        &Limits::default(),
    );
    assert!(forwarded.result.is_ok());
    assert_eq!(host.published.lock().unwrap()[0].0, "orders.large");
    assert_eq!(forwarded.logs[0].message, "forwarded order o1 as #1");
}

#[test]
fn a_request_larger_than_the_string_limit_can_still_be_read() {
    let body = "x".repeat(3000);
    let limits = Limits {
        max_string_bytes: 1000,
        ..Limits::default()
    };
    let request = json!({"body": body, "json": {"text": body}});
    let outcome = run_with(
        "request.body.len + request.json.text.len",
        Input::Request(request.clone()),
        MemHost::new(),
        &limits,
    );
    assert_eq!(outcome.result.unwrap(), json!(6000));
    // Copying it elsewhere is held to the normal limits.
    let outcome = run_with(
        "let copy = [request]; copy.len()",
        Input::Request(request),
        MemHost::new(),
        &limits,
    );
    assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::SizeLimit);
}
