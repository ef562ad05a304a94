//! Bounded collection of the log lines a run produces.

use std::sync::Mutex;

use serde::Serialize;

use crate::time::unix_ms;

/// Longest message kept per line, so one line cannot carry a whole payload.
pub const MAX_LOG_LINE_BYTES: usize = 2 * 1024;

const TRUNCATION_MARK: &str = "…";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    pub at_ms: i64,
}

/// Collects a run's log lines, keeping at most `max_lines`. Shared between
/// the `print`/`debug` hooks and the `log` module, hence the lock.
pub(crate) struct LogSink {
    max_lines: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    lines: Vec<LogLine>,
    dropped: usize,
}

impl LogSink {
    pub(crate) fn new(max_lines: usize) -> Self {
        LogSink {
            max_lines: max_lines.max(1),
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn push(&self, level: LogLevel, message: &str) {
        let mut state = self.lock();
        if state.lines.len() >= self.max_lines {
            state.dropped += 1;
            return;
        }
        state.lines.push(LogLine {
            level,
            message: truncate(message),
            at_ms: unix_ms(),
        });
    }

    /// The kept lines. When lines were dropped, the last kept line is
    /// replaced by a notice saying how many, so the total stays within the
    /// limit and a reader sees the cut where it happened.
    pub(crate) fn take(&self) -> Vec<LogLine> {
        let mut state = self.lock();
        let mut lines = std::mem::take(&mut state.lines);
        if state.dropped > 0 {
            let replaced = lines.pop().map_or(0, |_| 1);
            let dropped = state.dropped + replaced;
            lines.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{dropped} log line(s) dropped: the limit is {} lines per run",
                    self.max_lines
                ),
                at_ms: unix_ms(),
            });
        }
        lines
    }

    // A panic while the lock is held cannot leave the lines inconsistent
    // (each push is a single Vec::push), so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_LOG_LINE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_LOG_LINE_BYTES - TRUNCATION_MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_MARK}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_under_the_limit() {
        let sink = LogSink::new(3);
        sink.push(LogLevel::Info, "a");
        sink.push(LogLevel::Error, "b");
        let lines = sink.take();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].level, lines[0].message.as_str()),
            (LogLevel::Info, "a")
        );
        assert_eq!(
            (lines[1].level, lines[1].message.as_str()),
            (LogLevel::Error, "b")
        );
        assert!(lines[0].at_ms > 1_600_000_000_000);
    }

    #[test]
    fn exactly_at_the_limit_drops_nothing() {
        let sink = LogSink::new(2);
        sink.push(LogLevel::Info, "a");
        sink.push(LogLevel::Info, "b");
        let messages: Vec<_> = sink.take().into_iter().map(|l| l.message).collect();
        assert_eq!(messages, ["a", "b"]);
    }

    #[test]
    fn last_kept_line_reports_dropped_lines() {
        let sink = LogSink::new(3);
        for i in 0..10 {
            sink.push(LogLevel::Info, &i.to_string());
        }
        let lines = sink.take();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].message, "0");
        assert_eq!(lines[1].message, "1");
        assert_eq!(lines[2].level, LogLevel::Warn);
        assert_eq!(
            lines[2].message,
            "8 log line(s) dropped: the limit is 3 lines per run"
        );
    }

    #[test]
    fn long_lines_are_truncated_on_a_char_boundary() {
        let sink = LogSink::new(5);
        let long = "é".repeat(MAX_LOG_LINE_BYTES);
        sink.push(LogLevel::Info, &long);
        let short = "x".repeat(MAX_LOG_LINE_BYTES);
        sink.push(LogLevel::Info, &short);
        let lines = sink.take();
        assert!(lines[0].message.len() <= MAX_LOG_LINE_BYTES);
        assert!(lines[0].message.len() > MAX_LOG_LINE_BYTES - 8);
        assert!(lines[0].message.ends_with("é…"));
        assert_eq!(lines[1].message, short);
    }
}
