//! Every per-invocation limit stops a hostile script with the right kind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use picloud_runtime::{ErrorKind, Limits};

#[test]
fn infinite_loop_hits_the_operations_limit() {
    let limits = Limits {
        max_operations: 10_000,
        ..Limits::default()
    };
    let outcome = run_limited("loop {}", limits);
    assert_eq!(outcome.operations, 10_000);
    let message = err(outcome, ErrorKind::OperationsLimit);
    assert!(message.contains("more than 10000 operations"), "{message}");
    assert!(message.contains("(line 1, column "), "{message}");
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    let limits = Limits {
        max_operations: 100_000_000,
        timeout_ms: 200,
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = run_limited("let i = 0; loop { i += 1; }", limits);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(outcome.duration >= Duration::from_millis(200));
    let message = err(outcome, ErrorKind::TimeLimit);
    assert!(message.contains("time limit exceeded"), "{message}");
    assert!(message.contains("200 ms"), "{message}");
}

#[test]
fn cancel_flag_stops_a_running_loop() {
    let cancel = cancel_flag();
    let setter = cancel.clone();
    let flipper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        setter.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let limits = Limits {
        max_operations: 100_000_000,
        timeout_ms: 60_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = run_cancellable("loop {}", &limits, &cancel);
    flipper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = err(outcome, ErrorKind::TimeLimit);
    assert_eq!(message, "cancelled: server shutting down");
}

#[test]
fn unset_cancel_flag_changes_nothing() {
    let outcome = run_cancellable("40 + 2", &Limits::default(), &cancel_flag());
    assert_eq!(outcome.result.unwrap(), 42);
}

#[test]
fn deep_recursion_hits_the_call_depth_limit_without_overflowing_the_stack() {
    // 2 MiB is the default stack of spawned threads (and tokio's blocking
    // pool), so this proves the limit trips before the native stack runs out.
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| run_src("fn f(n) { f(n + 1) }\nf(0)"))
        .unwrap()
        .join()
        .unwrap();
    let message = err(outcome, ErrorKind::CallDepth);
    assert!(message.contains("more than 64 calls deep"), "{message}");
}

#[test]
fn string_doubling_hits_the_string_limit() {
    let outcome = run_src("let s = \"x\"; loop { s += s; }");
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("string size limit exceeded"), "{message}");
    assert!(message.contains("1048576 bytes"), "{message}");
}

#[test]
fn array_push_loop_hits_the_array_limit() {
    let outcome = run_src("let a = []; loop { a.push(1); }");
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(
        message.contains("more than 10000 array elements"),
        "{message}"
    );
}

#[test]
fn map_insert_loop_hits_the_map_limit() {
    // The map's size is re-measured on each insert, which a debug build on a busy CI core
    // has taken longer than the default 5 s for: this test is about the size limit, so
    // the clock is not the one to stop it.
    let limits = Limits {
        timeout_ms: 120_000,
        ..Limits::default()
    };
    let source = "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }";
    let outcome = run_limited(source, limits);
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("more than 10000 map entries"), "{message}");
}

#[test]
fn strings_inside_an_array_count_towards_the_string_limit() {
    // 100 strings of 16 KiB: each is small, together they exceed 1 MiB.
    let outcome = run_src(
        "let chunk = \"x\"; while chunk.len < 16384 { chunk += chunk; }
         let a = []; for i in 0..100 { a.push(chunk + i); }",
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("string size limit exceeded"), "{message}");
}

#[test]
fn strings_inside_a_map_count_towards_the_string_limit() {
    let outcome = run_src(
        "let chunk = \"x\"; while chunk.len < 16384 { chunk += chunk; }
         let m = #{}; for i in 0..100 { m[`k${i}`] = chunk + i; }",
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("string size limit exceeded"), "{message}");
}

#[test]
fn blobs_count_towards_the_array_limit() {
    let outcome = run_src("let b = blob(20000);");
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(
        message.contains("array elements or blob bytes"),
        "{message}"
    );
}

#[test]
fn limit_errors_cannot_be_caught() {
    let limits = Limits {
        max_operations: 5_000,
        ..Limits::default()
    };
    let outcome = run_limited("try { loop {} } catch (e) { 42 }", limits);
    err(outcome, ErrorKind::OperationsLimit);
}

#[test]
fn operations_are_counted_and_grow_with_work() {
    let small = run_src("let s = 0; for i in 0..10 { s += i; } s");
    let large = run_src("let s = 0; for i in 0..1000 { s += i; } s");
    assert_eq!(small.result.as_ref().unwrap(), 45);
    assert_eq!(large.result.as_ref().unwrap(), 499_500);
    assert!(small.operations > 0);
    assert!(
        large.operations > small.operations * 10,
        "{} vs {}",
        large.operations,
        small.operations
    );
}

#[test]
fn strings_stored_by_index_count_towards_the_string_limit() {
    // Rhai checks only the element after `a[i] = v`; the guard checks the whole array.
    let outcome = run_src(
        "let chunk = \"x\"; while chunk.len < 16384 { chunk += chunk; }
         let a = []; a.pad(100, 0); for i in 0..100 { a[i] = chunk + i; }",
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("string size limit exceeded"), "{message}");
}

#[test]
fn map_keys_count_towards_the_string_limit() {
    let outcome = run_src(
        "let chunk = \"x\"; while chunk.len < 16384 { chunk += chunk; }
         let m = #{}; for i in 0..100 { m[chunk + i] = i; }",
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("string size limit exceeded"), "{message}");
}

#[test]
fn nested_map_growth_hits_the_map_limit() {
    let limits = Limits {
        max_map_len: 500,
        ..Limits::default()
    };
    let outcome = run_limited(
        "let m = #{inner: #{}}; for i in 0..100000 { m.inner[`k${i}`] = i; }",
        limits,
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(message.contains("more than 500 map entries"), "{message}");
}

#[test]
fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| run_src("let a = []; for i in 0..100000 { a = [a]; } 0"))
        .unwrap()
        .join()
        .unwrap();
    let message = err(outcome, ErrorKind::SizeLimit);
    assert!(
        message.contains("nested more than 100 levels deep"),
        "{message}"
    );
}

#[test]
fn deeply_nested_results_are_refused() {
    let outcome = run_src(
        "fn nest(n) { if n == 0 { [] } else { [[[[[[[[[[nest(n - 1)]]]]]]]]]] } } nest(11)",
    );
    let message = err(outcome, ErrorKind::SizeLimit);
    assert_eq!(
        message,
        "script result: value is nested more than 100 levels deep"
    );
}

#[test]
fn this_is_disabled() {
    let err = picloud_runtime::compile("fn grow() { this.x = 1 }").unwrap_err();
    assert!(err.message.contains("'this'"), "{err}");
}
