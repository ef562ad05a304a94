//! The deploy-time check as diagnostics: what `POST …/scripts/check` answers and what the
//! dashboard's editor shows as the tenant types. It is the deploy's own compile, so the
//! check and the deploy cannot disagree.

use serde::Serialize;

use crate::compile::{compile_with_limits, CompileError};
use crate::limits::Limits;

/// One problem in a script, at a 1-based line and column (0 when Rhai gives no position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A deploy would refuse the script.
    Error,
}

impl From<CompileError> for Diagnostic {
    fn from(e: CompileError) -> Self {
        Self {
            line: e.line,
            column: e.column,
            message: e.message,
            severity: Severity::Error,
        }
    }
}

/// What a deploy of `source` under the app's `limits` would refuse; empty when it would
/// deploy. Rhai stops at the first syntax error, so there is at most one.
pub fn check_script(source: &str, limits: &Limits) -> Vec<Diagnostic> {
    match compile_with_limits(source, limits) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e.into()],
    }
}
