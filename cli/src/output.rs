//! What the commands print, and how they end: text for people, `--output json` for
//! scripts (one JSON document on stdout, always), progress on stderr, and exit codes that
//! tell a refusal by policy from an error (README, "Command line").

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything that went wrong (the server unreachable, a bad file, a digest mismatch…).
    pub const ERROR: u8 = 1;
    /// The command line is wrong.
    pub const USAGE: u8 = 2;
    /// Refused by policy: a push that ended quarantined or failed, a pull (or download) of
    /// an artifact that is not approved.
    pub const REFUSED: u8 = 3;
    /// Not found, or not allowed: no such artifact (or not visible to you), not signed in,
    /// a permission you lack.
    pub const NOT_FOUND: u8 = 4;
}

/// A command that did not succeed: its exit code, the error, and what to print on stdout
/// in JSON mode (the result, when there is one: a push that ended quarantined).
#[derive(Debug)]
pub struct Failure {
    pub exit: u8,
    pub error: anyhow::Error,
    pub result: Option<serde_json::Value>,
}

impl Failure {
    pub fn refused(error: anyhow::Error, result: Option<serde_json::Value>) -> Self {
        Self { exit: exit::REFUSED, error, result }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self { exit: exit::USAGE, error: anyhow::anyhow!(message.into()), result: None }
    }

    fn api_error(&self) -> Option<&arca_client::Error> {
        self.error.chain().find_map(|e| e.downcast_ref::<arca_client::Error>())
    }

    /// `{"error": {...}}` for JSON mode.
    pub fn to_json(&self) -> serde_json::Value {
        let api = self.api_error();
        serde_json::json!({
            "error": {
                "message": format!("{:#}", self.error),
                "code": api.and_then(|e| e.code()),
                "status": api.and_then(|e| e.status()),
                "exit_code": self.exit,
            }
        })
    }
}

/// The exit code an API error means.
pub fn exit_code_of(error: &arca_client::Error) -> u8 {
    match (error.code(), error.status()) {
        (Some("not_approved"), _) => exit::REFUSED,
        (_, Some(401 | 403 | 404)) => exit::NOT_FOUND,
        _ => exit::ERROR,
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let exit = error.chain().find_map(|e| e.downcast_ref::<arca_client::Error>()).map_or(exit::ERROR, exit_code_of);
        Self { exit, error, result: None }
    }
}

impl From<arca_client::Error> for Failure {
    fn from(error: arca_client::Error) -> Self {
        anyhow::Error::from(error).into()
    }
}

pub type Outcome = Result<(), Failure>;

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub format: Format,
}

impl Out {
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints `value` as JSON, or `text()` for people.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        match self.format {
            Format::Json => match serde_json::to_string_pretty(value) {
                Ok(s) => print_line(&s),
                Err(e) => eprintln!("arca: error: cannot encode the result: {e}"),
            },
            Format::Text => {
                let text = text();
                if !text.is_empty() {
                    print_line(text.trim_end_matches('\n'));
                }
            }
        }
    }

    /// A note for people (stderr; never in the way of JSON on stdout).
    pub fn note(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// Prints `text` and a newline on stdout. A reader that closed the pipe early (`arca
/// completion bash | head -1`) wanted no more: that is not an error (`println!` panics).
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("arca: error: cannot write to stdout: {e}");
        }
    }
}

/// Progress on stderr: a live line on a terminal, a line every 10% otherwise.
pub fn progress_bar() -> arca_client::Progress {
    #[derive(Default)]
    struct State {
        phase: Option<arca_client::Phase>,
        decile: u64,
        open: bool,
        last_message: Option<String>,
    }
    let tty = std::io::stderr().is_terminal();
    let state = Arc::new(Mutex::new(State::default()));
    Arc::new(move |report: &arca_client::Report<'_>| {
        let Ok(mut s) = state.lock() else { return };
        if s.phase != Some(report.phase) {
            if s.open {
                eprintln!();
            }
            *s = State { phase: Some(report.phase), ..State::default() };
        }
        if let Some(message) = report.message {
            if s.last_message.as_deref() != Some(message) {
                if s.open {
                    eprintln!();
                    s.open = false;
                }
                eprintln!("{}: {message}", report.phase.as_str());
                s.last_message = Some(message.to_owned());
            }
            return;
        }
        if report.total == 0 {
            return;
        }
        let pct = report.done.saturating_mul(100) / report.total;
        let mib = |n: u64| n as f64 / 1_048_576.0;
        if tty {
            eprint!("\r{} {pct:3}% {:.1}/{:.1} MiB", report.phase.as_str(), mib(report.done), mib(report.total));
            s.open = report.done < report.total;
            if !s.open {
                eprintln!();
            }
        } else if pct / 10 > s.decile {
            s.decile = pct / 10;
            eprintln!("{} {pct}% ({:.1}/{:.1} MiB)", report.phase.as_str(), mib(report.done), mib(report.total));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> arca_client::Error {
        let body = format!(r#"{{"status": {status}, "code": "{code}", "title": "t", "detail": "d"}}"#);
        arca_client::Error::Api(Box::new(arca_client::Problem::from_body(status, None, body.as_bytes())))
    }

    #[test]
    fn exit_codes_tell_refusals_from_errors() {
        assert_eq!(exit_code_of(&api(409, "not_approved")), exit::REFUSED);
        for (status, code) in [(404, "not_found"), (403, "permission_denied"), (401, "invalid_token")] {
            assert_eq!(exit_code_of(&api(status, code)), exit::NOT_FOUND, "{code}");
        }
        for (status, code) in [(409, "artifact_exists"), (500, "internal"), (429, "rate_limited"), (502, "")] {
            assert_eq!(exit_code_of(&api(status, code)), exit::ERROR, "{code}");
        }
        // Through anyhow's context chain too.
        let failure = Failure::from(anyhow::Error::from(api(404, "not_found")).context("pull x@1"));
        assert_eq!(failure.exit, exit::NOT_FOUND);
        let json = failure.to_json();
        assert_eq!((json["error"]["code"].as_str(), json["error"]["status"].as_u64()), (Some("not_found"), Some(404)));
        assert_eq!(json["error"]["exit_code"], 4);
        assert_eq!(Failure::from(anyhow::anyhow!("disk full")).exit, exit::ERROR);
    }
}
