//! How commands print: plain lines, colour only on a terminal, or one JSON object per line
//! for scripts (`--json`).

use std::io::{IsTerminal as _, Write as _};

/// Where and how a command writes its results (always stdout; diagnostics go to stderr).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
    color: bool,
}

impl Output {
    /// JSON lines when `json`; otherwise text, coloured when stdout is a terminal and
    /// `NO_COLOR` is unset.
    pub(crate) fn new(json: bool) -> Self {
        let color = !json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self { json, color }
    }

    /// Whether results are JSON lines.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Prints `human` as text, or `json` as one line, and flushes (a script waits on it).
    /// A closed pipe is ignored: the command goes on or ends by itself.
    pub(crate) fn emit(self, human: &str, json: &serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{json}")
        } else {
            writeln!(out, "{human}")
        };
        let _ = out.flush();
    }

    /// Prints text in human mode only (banners, tables, prompts' companions).
    pub(crate) fn text(self, human: &str) {
        if !self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{human}");
            let _ = out.flush();
        }
    }

    /// `text` in bold green on a terminal.
    pub(crate) fn good(self, text: &str) -> String {
        self.paint("1;32", text)
    }

    /// `text` in bold on a terminal.
    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// `text` dimmed on a terminal.
    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// A one-line progress counter on stderr, shown only when stderr is a terminal and the
/// output is not JSON.
#[derive(Debug)]
pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    step: u64,
    next: u64,
    shown: bool,
}

impl Output {
    /// A progress counter for `total` items of `what`.
    pub(crate) fn progress(self, what: &'static str, total: u64) -> Progress {
        let shown = !self.json && std::io::stderr().is_terminal();
        let step = (total / 20).max(1);
        Progress {
            what,
            total,
            step,
            next: step,
            shown,
        }
    }
}

impl Progress {
    /// `done` items so far; redraws every 5%.
    pub(crate) fn update(&mut self, done: u64) {
        if self.shown && done >= self.next {
            self.next = done + self.step;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}: {done} of {}", self.what, self.total);
            let _ = err.flush();
        }
    }

    /// Clears the line.
    pub(crate) fn finish(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
