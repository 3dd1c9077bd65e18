//! A browser as the suite drives one: its cookies kept, forms read from pages.

use crate::Answer;

/// A browser with a cookie jar that reads redirects instead of following them.
pub(super) struct Browser {
    http: reqwest::Client,
    pub(super) cookies: Vec<(String, String)>,
}

impl Browser {
    pub(super) fn new() -> Self {
        Self {
            http: crate::no_redirects(),
            cookies: Vec::new(),
        }
    }

    pub(super) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let Some((pair, attributes)) = value
                .to_str()
                .ok()
                .map(|v| v.split_once(';').unwrap_or((v, "")))
            else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(k, _)| k != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub(super) async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let answer = Answer::of(request).await;
        self.absorb(&answer.headers);
        answer
    }

    pub(super) async fn get(&mut self, url: &str) -> Answer {
        let request = self.http.get(url);
        self.send(request).await
    }

    pub(super) async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(url).form(form);
        self.send(request).await
    }
}

/// The value of the hidden field `name` of a page's form.
pub(super) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.find(&marker)
        .and_then(|at| html.get(at + marker.len()..))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

pub(super) fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location).ok().and_then(|url| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}
