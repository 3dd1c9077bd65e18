//! What the commands print: text for people, JSON with `--json`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use serde_json::json;

/// The command's outcome for the terminal: text or JSON, and the exit code.
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) color: bool,
}

impl Output {
    pub(crate) fn ok(&self, text: &str, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        } else if self.color {
            println!("\x1b[32m✓\x1b[0m {text}");
        } else {
            println!("✓ {text}");
        }
    }

    pub(crate) fn fail(&self, error: &str) -> ExitCode {
        if self.json {
            println!("{}", json!({ "error": error }));
        } else if std::io::stderr().is_terminal() {
            eprintln!("\x1b[31merror:\x1b[0m {error}");
        } else {
            eprintln!("error: {error}");
        }
        ExitCode::FAILURE
    }
}
