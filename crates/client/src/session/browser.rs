//! Opening the authorization URL for the user.

use url::Url;

use crate::Error;

/// Opens the authorization URL for the user.
#[async_trait::async_trait]
pub trait Browser: Send + Sync {
    /// Opens `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Browser`] when it cannot.
    async fn open(&self, url: &Url) -> Result<(), Error>;
}

/// The desktop's browser, started without a shell (a URL is never parsed as a command:
/// mcp-remote's remote code execution came from that).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

#[async_trait::async_trait]
impl Browser for SystemBrowser {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Browser(format!("refusing to open {url}")));
        }
        let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
            ("open", vec![url.as_str()])
        } else if cfg!(target_os = "windows") {
            (
                "rundll32",
                vec!["url.dll,FileProtocolHandler", url.as_str()],
            )
        } else {
            ("xdg-open", vec![url.as_str()])
        };
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| {
                Error::Browser(format!("cannot start {program}: {e}; open {url} yourself"))
            })
    }
}
