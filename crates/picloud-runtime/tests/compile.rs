//! Deploy-time compilation: positions, disabled features, source size.

mod common;

use common::*;
use picloud_runtime::{compile, compile_with_limits, ErrorKind, Limits, MAX_SOURCE_BYTES};

#[test]
fn syntax_error_reports_line_and_column() {
    let err = compile("let a = 1;\nlet b = 2;\nlet c = (1 + ;\n").unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.column > 0, "{err}");
    assert!(err.to_string().starts_with("line 3, column "), "{err}");
    assert!(!err.message.is_empty());
}

#[test]
fn eval_is_rejected_at_compile_time() {
    let err = compile("let x = eval(\"1\");").unwrap_err();
    assert_eq!((err.line, err.column), (1, 9), "{err}");
    assert!(err.message.contains("eval"), "{err}");
}

#[test]
fn eval_cannot_be_reached_through_a_function_pointer() {
    let outcome = run_src(r#"let f = Fn("eval"); f.call("1")"#);
    let message = err(outcome, ErrorKind::Runtime);
    assert!(message.contains("eval"), "{message}");
}

#[test]
fn import_is_rejected_without_touching_the_disk() {
    // A file by that name in the working directory must not matter.
    let err = compile("import \"x\" as y;\ny::f()").unwrap_err();
    assert_eq!((err.line, err.column), (1, 1), "{err}");
    assert!(err.message.contains("import"), "{err}");
}

#[test]
fn oversized_source_is_rejected() {
    let source = format!("let x = 1;{}", " ".repeat(MAX_SOURCE_BYTES));
    let err = compile(&source).unwrap_err();
    assert_eq!((err.line, err.column), (1, 1));
    assert!(err.message.contains("262144 bytes (256 KiB)"), "{err}");
    // Exactly at the limit is fine.
    let source = format!("1{}", " ".repeat(MAX_SOURCE_BYTES - 1));
    assert!(compile(&source).is_ok());
}

#[test]
fn expression_depth_is_a_compile_time_limit() {
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let err = compile(&nested).unwrap_err();
    assert!(err.message.contains("exceeds maximum complexity"), "{err}");
    let limits = Limits {
        max_expr_depth: 256,
        ..Limits::default()
    };
    assert!(compile_with_limits(&nested, &limits).is_ok());
}

#[test]
fn compile_errors_serialize_for_the_api() {
    let err = compile("let = 1;").unwrap_err();
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["line"], 1);
    assert!(json["message"].is_string());
}
