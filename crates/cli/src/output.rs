//! What the commands print: text for people, JSON with `--json`.

use std::process::ExitCode;

use serde_json::json;

/// The command's outcome for the terminal: text or JSON, and the exit code.
pub(crate) struct Output {
    pub(crate) json: bool,
    /// Colour standard output.
    pub(crate) color: bool,
    /// Colour standard error.
    pub(crate) color_errors: bool,
}

/// The exit status when the user must authorize (again) before the command can work: no
/// tokens held, the refresh token refused, the server refusing the token (`EX_NOPERM`,
/// sysexits.h). A script tells it from other failures (1) and runs `mcpauth auth`.
pub(crate) const EXIT_AUTHORIZATION_NEEDED: u8 = 77;

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
        self.fail_with(error, 1)
    }

    /// Reports `error` and answers exit status `status`.
    pub(crate) fn fail_with(&self, error: &str, status: u8) -> ExitCode {
        if self.json {
            println!("{}", json!({ "error": error, "exit_status": status }));
        } else if self.color_errors {
            eprintln!("\x1b[31merror:\x1b[0m {error}");
        } else {
            eprintln!("error: {error}");
        }
        ExitCode::from(status)
    }
}
