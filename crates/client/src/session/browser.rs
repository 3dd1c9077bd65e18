//! Opening the authorization URL for the user.

use url::Url;

use crate::Error;
use crate::device::DeviceCode;

/// Shows the person what to do to authorize: opens the authorization URL, or shows a device
/// code.
#[async_trait::async_trait]
pub trait Browser: Send + Sync {
    /// Opens `url`, or shows it to the person some other way.
    ///
    /// # Errors
    ///
    /// [`Error::Browser`] when the person cannot be shown the URL at all: authorization
    /// stops there. An implementation that showed the URL (printed it) but could not start a
    /// browser answers `Ok`: the person can still open it. (`SystemBrowser` refuses only a
    /// URL that is not http or https.)
    async fn open(&self, url: &Url) -> Result<(), Error>;

    /// Whether the person can finish in a browser on *this* machine, where the authorization
    /// response comes back (a loopback listener, RFC 8252 §7.3). When not, and the server
    /// offers the device flow, [`OAuthClient::authorize`](crate::OAuthClient::authorize)
    /// uses the device flow instead and hands the code to
    /// [`show_device_code`](Self::show_device_code). Default: yes.
    fn opens_on_this_machine(&self) -> bool {
        true
    }

    /// Shows a device code (RFC 8628 §3.3) for the person to enter on another device, when
    /// `authorize` falls back to the device flow. Default: printed on stderr.
    fn show_device_code(&self, code: &DeviceCode) {
        eprintln!(
            "To authorize, visit {} on any device and enter the code\n\n    {}\n",
            code.verification_uri, code.user_code
        );
        if let Some(complete) = &code.verification_uri_complete {
            eprintln!("(or open {complete})");
        }
    }
}

/// The desktop's browser, started without a shell (a URL is never parsed as a command:
/// mcp-remote's remote code execution came from that).
///
/// The URL is always printed on stderr as well, so a person on a machine where no browser
/// opens (over SSH, in a container) can open it elsewhere instead of waiting in silence. On
/// Linux and the BSDs, with neither `DISPLAY` nor `WAYLAND_DISPLAY` set, no browser is
/// started at all (a text-mode fallback would take over the terminal). Applications with a
/// window of their own give [`OAuthClientBuilder::browser`](crate::OAuthClientBuilder::browser)
/// a [`Browser`] that shows the URL their way; machines with no browser anywhere use the
/// device flow ([`OAuthClient::authorize_device`](crate::OAuthClient::authorize_device)).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

/// Whether a graphical session can show a browser here, from the environment `variable`
/// reads.
fn has_display(variable: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| variable(name).is_some_and(|v| !v.is_empty()))
}

#[async_trait::async_trait]
impl Browser for SystemBrowser {
    /// Not without a graphical session (Linux and the BSDs: no `DISPLAY`, no
    /// `WAYLAND_DISPLAY`).
    fn opens_on_this_machine(&self) -> bool {
        has_display(|name| std::env::var_os(name))
    }

    async fn open(&self, url: &Url) -> Result<(), Error> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Browser(format!("refusing to open {url}")));
        }
        if !has_display(|name| std::env::var_os(name)) {
            // Only reached when the server offers no device flow (see `opens_on_this_machine`).
            eprintln!(
                "No browser can be opened here (no DISPLAY) and the authorization server offers \
                 no device flow. Open this URL in a browser; its answer comes back to 127.0.0.1 \
                 on this machine, so from another machine forward that port (ssh -L):\n  {url}"
            );
            return Ok(());
        }
        eprintln!("Opening your browser to authorize. If it does not open, visit:\n  {url}");
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
        let started = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(false)
            .spawn();
        match started {
            // The URL is on stderr: the person can still open it, so this is no failure.
            Err(e) => eprintln!("(cannot start {program}: {e})"),
            Ok(mut child) => {
                // Reaped in the background; an opener that fails at once is reported.
                tokio::spawn(async move {
                    if let Ok(status) = child.wait().await
                        && !status.success()
                    {
                        eprintln!("({program} could not open a browser: {status})");
                    }
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_display_no_browser_is_started_on_linux() {
        let nothing = |_: &str| None;
        let x11 = |name: &str| (name == "DISPLAY").then(|| ":0".into());
        let wayland = |name: &str| (name == "WAYLAND_DISPLAY").then(|| "wayland-0".into());
        let empty = |_: &str| Some(std::ffi::OsString::new());
        let desktop = cfg!(any(target_os = "macos", target_os = "windows"));
        assert_eq!(has_display(nothing), desktop);
        assert_eq!(has_display(empty), desktop);
        assert!(has_display(x11));
        assert!(has_display(wayland));
    }
}
