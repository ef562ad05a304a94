//! Deploy-time compilation of tenant scripts.

use std::sync::Arc;

use rhai::{ParseError, Position, AST};
use serde::Serialize;

use crate::engine::hardened_engine;
use crate::limits::Limits;

/// Scripts larger than this are rejected before parsing, so deploying a huge
/// source cannot tie up the parser.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// A compiled script. Cloning is cheap, so callers can cache one per
/// deployment and hand a clone to every run.
#[derive(Clone)]
pub struct Script {
    ast: Arc<AST>,
}

impl Script {
    pub(crate) fn ast(&self) -> &AST {
        &self.ast
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").finish_non_exhaustive()
    }
}

/// Why a script failed to compile. `line` and `column` are 1-based, and 0
/// when Rhai reports no position.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("line {line}, column {column}: {message}")]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Compiles with the default limits. The expression-depth limit is a
/// parse-time check, so apps with a `max_expr_depth` override should use
/// [`compile_with_limits`].
pub fn compile(source: &str) -> Result<Script, CompileError> {
    compile_with_limits(source, &Limits::default())
}

/// Compiles with the same hardened engine configuration runs use, so
/// disabled language features (`eval`, `import`) fail here, at deploy time.
pub fn compile_with_limits(source: &str, limits: &Limits) -> Result<Script, CompileError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(CompileError {
            message: format!(
                "script is {} bytes; the maximum is {MAX_SOURCE_BYTES} bytes (256 KiB)",
                source.len()
            ),
            line: 1,
            column: 1,
        });
    }
    let engine = hardened_engine(limits);
    let ast = engine.compile(source).map_err(from_parse_error)?;
    Ok(Script { ast: Arc::new(ast) })
}

fn from_parse_error(err: ParseError) -> CompileError {
    let (line, column) = line_column(err.position());
    CompileError {
        message: err.err_type().to_string(),
        line,
        column,
    }
}

pub(crate) fn line_column(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(0), pos.position().unwrap_or(0))
}
