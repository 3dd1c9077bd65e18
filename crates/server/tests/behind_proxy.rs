//! `mcpauth-server` behind a real reverse proxy: Debian's nginx, started by the test on
//! loopback in front of the server. Clients connect to nginx from their own loopback
//! addresses (127.0.0.2, 127.0.0.3, …), as distinct hosts would.
//!
//! With `trusted_proxies` naming nginx, one abusive client that hammers an account's password
//! locks out only itself: the account's owner and everyone else still sign in. A forged
//! `X-Forwarded-For`, through nginx or straight from an untrusted peer, changes nothing.
//! Without `trusted_proxies` every client is nginx's address, and the abuser locks everyone
//! out: the switch is what makes the difference. `forwarded_header = "forwarded"` reads
//! RFC 7239 `Forwarded` instead, when nginx is told to write that.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

#[path = "support/certificates.rs"]
mod certificates;
mod support;

use support::{free_port, temp_dir};

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// The double-submit CSRF value of the sign-in form (cookie and field), 43 characters.
const FORM_CSRF: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

/// The nginx binary: Debian's package (`.ci/run` installs it).
fn nginx_binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("nginx is not installed: apt-get install nginx (see .ci/run)");
}

/// nginx in the foreground, one process, everything in `dir`; killed when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How nginx names the client to the server behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    XForwardedFor,
    Forwarded,
}

/// nginx on a free port in front of `upstream`; with `tls` (certificate chain, key), HTTPS
/// as docs/deployment.md configures it.
fn start_nginx(dir: &Path, upstream: u16, writes: Writes, tls: Option<(&Path, &Path)>) -> Nginx {
    let port = free_port();
    let (listen, tls) = match tls {
        None => (format!("127.0.0.1:{port}"), String::new()),
        Some((chain, key)) => (
            format!("127.0.0.1:{port} ssl"),
            format!(
                "ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.2 TLSv1.3;",
                chain.display(),
                key.display()
            ),
        ),
    };
    let forwarding = match writes {
        Writes::XForwardedFor => {
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;".to_owned()
        }
        // Overwritten, not appended: a client's own Forwarded header is dropped.
        Writes::Forwarded => "proxy_set_header Forwarded \"for=$remote_addr\";".to_owned(),
    };
    let dir = dir.display();
    let config = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {listen};
        {tls}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            {forwarding}
        }}
    }}
}}
"#
    );
    let path = format!("{dir}/nginx.conf");
    std::fs::write(&path, config).unwrap();
    // `-e stderr`: nginx opens its default error log before reading the configuration.
    let mut child = Command::new(nginx_binary())
        .args(["-p", &dir.to_string(), "-e", "stderr", "-c", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        // The port was free a moment ago; if something took it, nginx exits.
        assert!(
            child.try_wait().unwrap().is_none(),
            "nginx exited (port {port} taken?)"
        );
        assert!(Instant::now() < deadline, "nginx did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { child, port }
}

/// A client on its own loopback address, as a host of its own.
fn client_at(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One password sign-in at the account page's form.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
    forged_for: Option<&str>,
) -> StatusCode {
    let mut request = client
        .post(format!("{base}/sign-in"))
        .header("cookie", format!("mcpauth_form={FORM_CSRF}"))
        .form(&[
            ("csrf_token", FORM_CSRF),
            ("email", email),
            ("password", password),
            ("next", "account"),
        ]);
    if let Some(forged) = forged_for {
        request = request
            .header("x-forwarded-for", forged)
            .header("forwarded", format!("for={forged}"));
    }
    request.send().await.unwrap().status()
}

struct Setup {
    nginx: Nginx,
    server_port: u16,
    store: mcpauth_store_sql::SqlStore,
    _server: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Setup {
    fn through_proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.port)
    }

    fn direct(&self) -> String {
        format!("http://127.0.0.1:{}", self.server_port)
    }
}

async fn start(tag: &str, trusted: &[&str], header: &str, writes: Writes) -> Setup {
    let dir = temp_dir(&format!("proxy-{tag}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let nginx = start_nginx(&dir, server_port, writes, None);
    let mut config = mcpauth_server::Config::load(None, |name| match name {
        "MCPAUTH_FORWARDED_HEADER" => Some(header.to_owned()),
        _ => None,
    })
    .unwrap();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(format!("http://127.0.0.1:{}", nginx.port));
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.trusted_proxies = trusted.iter().map(|t| (*t).to_owned()).collect();
    config.login_lockout_after = 3;
    config.sign_in_attempts_per_ip_per_hour = 10;
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, ALICE, PASSWORD)
        .await
        .unwrap();
    mcpauth_server::add_user(&server.store, BOB, PASSWORD)
        .await
        .unwrap();
    let store = server.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = mcpauth_server::serve_on(listener, server, async {
            let _ = stopped.await;
        })
        .await;
    });
    Setup {
        nginx,
        server_port,
        store,
        _server: server,
        _stop: stop,
    }
}

/// The abuser at 127.0.0.2 guesses alice's password through the proxy until it is refused,
/// claiming (in its own forwarding headers) to be alice's host.
async fn abuse(setup: &Setup) {
    let abuser = client_at("127.0.0.2");
    let mut refused = false;
    for _ in 0..12 {
        let status = sign_in(
            &abuser,
            &setup.through_proxy(),
            ALICE,
            "not the password",
            Some("127.0.0.3"),
        )
        .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
            "{status}"
        );
        refused |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "the abuser is stopped");
    assert_eq!(
        sign_in(&abuser, &setup.through_proxy(), ALICE, PASSWORD, None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password is refused to the abuser now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_one_abusive_client_cannot_lock_anyone_else_out() {
    let setup = start(
        "trusted",
        &["127.0.0.1"],
        "x-forwarded-for",
        Writes::XForwardedFor,
    )
    .await;
    abuse(&setup).await;
    // Alice, from her own host, and Bob, from his, sign in.
    let alice = client_at("127.0.0.3");
    assert_eq!(
        sign_in(&alice, &setup.through_proxy(), ALICE, PASSWORD, None).await,
        StatusCode::SEE_OTHER
    );
    let bob = client_at("127.0.0.4");
    assert_eq!(
        sign_in(&bob, &setup.through_proxy(), BOB, PASSWORD, None).await,
        StatusCode::SEE_OTHER
    );

    // A forged X-Forwarded-For straight from an untrusted peer counts against that peer:
    // it cannot spend alice's budget, and is stopped itself.
    let forger = client_at("127.0.0.5");
    let mut stopped = false;
    for _ in 0..12 {
        stopped |= sign_in(
            &forger,
            &setup.direct(),
            ALICE,
            "not the password",
            Some("127.0.0.3"),
        )
        .await
            == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(stopped, "the forger is limited as itself");
    assert_eq!(
        sign_in(&alice, &setup.through_proxy(), ALICE, PASSWORD, None).await,
        StatusCode::SEE_OTHER,
        "the forged header changed nothing for alice"
    );

    // The audit trail names each caller's own address: the abuser's (never the host it
    // claimed, nor nginx's), alice's, bob's, and the forger's (not what it forged).
    let sign_ins = setup
        .store
        .audit_events(&mcpauth_store_sql::AuditFilter::default(), 1000)
        .await
        .unwrap();
    let from = |address: &str| {
        sign_ins
            .iter()
            .filter(|e| e.record.event == "sign_in" && e.record.address.as_deref() == Some(address))
            .map(|e| e.record.outcome)
            .collect::<Vec<_>>()
    };
    use mcpauth_store_sql::AuditOutcome::{Failure, Success};
    // The ten attempts its window allows (wrong passwords, then its lock), and one record
    // for the refusals past the limit.
    assert_eq!(from("127.0.0.2"), [Failure; 11]);
    assert_eq!(
        from("127.0.0.3"),
        [Success, Success],
        "alice's two sign-ins"
    );
    assert_eq!(from("127.0.0.4"), [Success], "bob's");
    assert_eq!(from("127.0.0.5"), [Failure; 11]);
    assert!(
        from("127.0.0.1").is_empty(),
        "nginx's address is never the caller's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_every_client_behind_the_proxy_shares_its_limits() {
    let setup = start("untrusted", &[], "x-forwarded-for", Writes::XForwardedFor).await;
    abuse(&setup).await;
    let alice = client_at("127.0.0.3");
    assert_eq!(
        sign_in(&alice, &setup.through_proxy(), ALICE, PASSWORD, None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "every client is nginx's address: the abuser's limits are everyone's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_header_is_read_when_configured() {
    let setup = start("forwarded", &["127.0.0.1"], "forwarded", Writes::Forwarded).await;
    abuse(&setup).await;
    let alice = client_at("127.0.0.3");
    assert_eq!(
        sign_in(&alice, &setup.through_proxy(), ALICE, PASSWORD, None).await,
        StatusCode::SEE_OTHER
    );
}

// TLS at the proxy, as docs/deployment.md sets it up: nginx terminates HTTPS with the
// operator's certificate, and the server behind it speaks plain HTTP on loopback with the
// https issuer and `trusted_proxies`. Clients get the https metadata and HSTS; the session
// cookie is `__Host-` and `Secure`; the audit trail names each caller's own address, never
// nginx's and never one a caller forged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_at_the_proxy_serves_the_https_issuer_and_the_audit_trail_names_each_caller() {
    use certificates::{authority, leaf};
    let dir = temp_dir("proxy-tls");
    let (ca, ca_der) = authority();
    let (chain, key, _) = leaf(&ca);
    let (chain_path, key_path) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::write(&chain_path, chain).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nginx = start_nginx(
        &dir,
        listener.local_addr().unwrap().port(),
        Writes::XForwardedFor,
        Some((&chain_path, &key_path)),
    );
    let issuer = format!("https://127.0.0.1:{}", nginx.port);
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let server = mcpauth_server::build(&config).await.unwrap();
    let alice_id = mcpauth_server::add_user(&server.store, ALICE, PASSWORD)
        .await
        .unwrap();
    let store = server.store.clone();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    let https_client_at = |address: &str| {
        reqwest::Client::builder()
            .local_address(address.parse::<IpAddr>().unwrap())
            .add_root_certificate(reqwest::Certificate::from_der(&ca_der).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };

    let metadata = https_client_at("127.0.0.4")
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
    assert_eq!(
        metadata.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let document: serde_json::Value = metadata.json().await.unwrap();
    assert_eq!(document["issuer"], issuer.as_str());
    assert_eq!(
        document["token_endpoint"],
        format!("{issuer}/token").as_str()
    );

    let sign_in_over_tls = |address: &'static str, password: &'static str| {
        let client = https_client_at(address);
        let issuer = issuer.clone();
        async move {
            client
                .post(format!("{issuer}/sign-in"))
                .header("cookie", format!("__Host-mcpauth_form={FORM_CSRF}"))
                // What a caller forges is nginx's to overwrite, and the server's to ignore.
                .header("x-forwarded-for", "127.0.0.9")
                .form(&[
                    ("csrf_token", FORM_CSRF),
                    ("email", ALICE),
                    ("password", password),
                    ("next", "account"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let abuser = sign_in_over_tls("127.0.0.2", "not the password").await;
    assert_eq!(abuser.status(), StatusCode::UNAUTHORIZED);
    let alice = sign_in_over_tls("127.0.0.3", PASSWORD).await;
    assert_eq!(alice.status(), StatusCode::SEE_OTHER);
    let session = alice.headers()["set-cookie"].to_str().unwrap();
    assert!(
        session.starts_with("__Host-mcpauth_session=") && session.contains("; Secure"),
        "{session}"
    );

    let mut filter = mcpauth_store_sql::AuditFilter::default();
    filter.event = Some("sign_in".into());
    let mut trail: Vec<(String, Option<String>, Option<String>)> = store
        .audit_events(&filter, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.record.outcome.as_str().to_owned(),
                e.record.address,
                e.record.user_id,
            )
        })
        .collect();
    trail.reverse();
    assert_eq!(
        trail,
        [
            (
                "failure".to_owned(),
                Some("127.0.0.2".to_owned()),
                Some(alice_id.clone())
            ),
            (
                "success".to_owned(),
                Some("127.0.0.3".to_owned()),
                Some(alice_id)
            ),
        ]
    );
    drop(nginx);
}
