//! Where the authorization URL goes besides the system browser (`SystemBrowser`, which prints
//! it too, and on a machine without a display leaves it to the device flow): printed only
//! (`--no-browser`), or followed by the CLI itself (conformance runs).

use mcpauth_client::{Browser, Error};
use url::Url;

/// Opens nothing: says where to go.
pub(crate) struct PrintUrl;

#[async_trait::async_trait]
impl Browser for PrintUrl {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        eprintln!("Open this URL in a browser to authorize:\n  {url}");
        Ok(())
    }
}

/// Fetches the authorization URL and follows its redirects to the loopback listener, with
/// no person involved (conformance and test servers that approve at once).
pub(crate) struct FollowRedirects;

#[async_trait::async_trait]
impl Browser for FollowRedirects {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        let url = url.clone();
        let client = mcpauth_client::ReqwestClient::new()?;
        tokio::spawn(async move {
            let mut next = url;
            for _ in 0..10 {
                let Ok(request) = http::Request::get(next.as_str()).body(Vec::new()) else {
                    return;
                };
                let Ok(response) = mcpauth_client::HttpClient::send(&client, request).await else {
                    return;
                };
                let Some(location) = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| next.join(l).ok())
                else {
                    return;
                };
                next = location;
            }
        });
        Ok(())
    }
}
