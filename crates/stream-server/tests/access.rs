//! Who may reach the server: a table of hosts, origins and tokens over REST
//! and the WebSocket upgrade, the two attacks of a hostile page among them
//! (a foreign origin opening the socket; a DNS-rebinding page whose `Host` is
//! its own name), the counters of refusals, and tokens kept out of the log.

mod common;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A token with the characters a URL must encode.
const TOKEN: &str = "t0k+en/with=signs";

#[derive(Clone, Copy, Debug)]
enum Token {
    Absent,
    Right,
    Wrong,
}

/// One row: the request's `Host` and `Origin` (`{addr}` is the server's
/// address, `{port}` its port), the token, and the statuses of a read
/// (`GET /v1/sessions`), a write (`POST /v1/sessions`) and the upgrade.
struct Row {
    what: &'static str,
    host: &'static str,
    origin: Option<&'static str>,
    token: Token,
    read: u16,
    write: u16,
    upgrade: u16,
}

const fn row(
    what: &'static str,
    host: &'static str,
    origin: Option<&'static str>,
    token: Token,
    [read, write, upgrade]: [u16; 3],
) -> Row {
    Row { what, host, origin, token, read, write, upgrade }
}

const ALLOWED: [u16; 3] = [200, 201, 101];
const CROSS_SITE: [u16; 3] = [200, 403, 403];
const REFUSED: [u16; 3] = [403, 403, 403];
const UNAUTHORIZED: [u16; 3] = [401, 401, 401];

/// The server on its defaults, with one extra origin and host listed.
const OPEN_SERVER: &[Row] = &[
    row("a non-browser client (no Origin)", "{addr}", None, Token::Absent, ALLOWED),
    row("the server's own page", "{addr}", Some("http://{addr}"), Token::Absent, ALLOWED),
    row("its own page by name", "localhost:{port}", Some("http://localhost:{port}"), Token::Absent, ALLOWED),
    row("a listed origin", "{addr}", Some("http://app.example:3000"), Token::Absent, ALLOWED),
    row("a listed host", "box.lan:{port}", Some("http://box.lan:{port}"), Token::Absent, ALLOWED),
    row("attack: a foreign page opens the socket", "{addr}", Some("https://evil.example"), Token::Absent, CROSS_SITE),
    row("a sandboxed page (Origin: null)", "{addr}", Some("null"), Token::Absent, CROSS_SITE),
    row("the same host on another port", "{addr}", Some("http://127.0.0.1:1"), Token::Absent, CROSS_SITE),
    row(
        "attack: a DNS-rebinding page",
        "evil.example:{port}",
        Some("http://evil.example:{port}"),
        Token::Absent,
        REFUSED,
    ),
    row("a rebinding page's non-browser twin", "evil.example:{port}", None, Token::Absent, REFUSED),
];

/// The server with `--auth-token`: the token is checked after host and origin.
const TOKEN_SERVER: &[Row] = &[
    row("the right token", "{addr}", None, Token::Right, ALLOWED),
    row("the right token from its own page", "{addr}", Some("http://{addr}"), Token::Right, ALLOWED),
    row("no token", "{addr}", None, Token::Absent, UNAUTHORIZED),
    row("a wrong token", "{addr}", None, Token::Wrong, UNAUTHORIZED),
    row("the right token from a foreign page", "{addr}", Some("https://evil.example"), Token::Right, [200, 403, 403]),
    row("the right token, rebinding", "evil.example:{port}", None, Token::Right, REFUSED),
];

fn fill(template: &str, server: &TestServer) -> String {
    template.replace("{addr}", &server.addr.to_string()).replace("{port}", &server.addr.port().to_string())
}

fn token_value(token: Token) -> Option<&'static str> {
    match token {
        Token::Absent => None,
        Token::Right => Some(TOKEN),
        Token::Wrong => Some("t0k en/with=signs"),
    }
}

async fn rest_status(server: &TestServer, row: &Row, method: reqwest::Method, path: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .request(method.clone(), server.url(path))
        .header(reqwest::header::HOST, fill(row.host, server));
    if let Some(origin) = row.origin {
        request = request.header(reqwest::header::ORIGIN, fill(origin, server));
    }
    if let Some(token) = token_value(row.token) {
        request = request.bearer_auth(token);
    }
    if method == reqwest::Method::POST {
        request = request.json(&serde_json::json!({ "name": "made by the table" }));
    }
    request.send().await.expect("request").status().as_u16()
}

/// The upgrade's status; the token goes in the query, form-encoded as the
/// package's URLSearchParams writes it.
async fn upgrade_status(server: &TestServer, row: &Row) -> u16 {
    let query = token_value(row.token)
        .map(|token| format!("?token={}", form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()))
        .unwrap_or_default();
    let mut request = format!("ws://{}/v1/ws{query}", server.addr).into_client_request().expect("request");
    request.headers_mut().insert("host", fill(row.host, server).parse().unwrap());
    if let Some(origin) = row.origin {
        request.headers_mut().insert("origin", fill(origin, server).parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, response)) => {
            let hello = ws.next().await.expect("a message").expect("hello");
            assert!(hello.to_text().unwrap().contains(r#""type":"hello""#), "{hello:?}");
            response.status().as_u16()
        }
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("{}: upgrade failed without a status: {error}", row.what),
    }
}

async fn check_table(server: &TestServer, rows: &[Row]) {
    for row in rows {
        let read = rest_status(server, row, reqwest::Method::GET, "/v1/sessions").await;
        let write = rest_status(server, row, reqwest::Method::POST, "/v1/sessions").await;
        let upgrade = upgrade_status(server, row).await;
        assert_eq!([read, write, upgrade], [row.read, row.write, row.upgrade], "{}", row.what);
    }
}

#[tokio::test]
async fn hosts_and_origins_on_the_defaults() {
    let server = TestServer::start(|config| {
        config.cors_origins = vec!["http://app.example:3000".into()];
        config.allowed_hosts = vec!["box.lan".into()];
    })
    .await;
    check_table(&server, OPEN_SERVER).await;
    let base = server.url("");
    // Counted by reason: each attack row refused its write and its upgrade.
    assert_eq!(metric(&base, r#"stream_rejected_inputs_total{reason="forbidden_origin"}"#).await, 6.0);
    assert_eq!(metric(&base, r#"stream_rejected_inputs_total{reason="forbidden_host"}"#).await, 6.0);
    server.stop().await;
}

#[tokio::test]
async fn tokens_after_hosts_and_origins() {
    let server = TestServer::start(|config| config.auth_token = Some(TOKEN.parse().unwrap())).await;
    check_table(&server, TOKEN_SERVER).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "the health check needs no token");
    server.stop().await;
}

#[tokio::test]
async fn refusals_answer_in_the_error_shape() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::Client::new()
        .get(server.url("/v1/sessions"))
        .header(reqwest::header::HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden_host");
    server.stop().await;
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let dir = TempDir::new("token-log");
    let log_path = dir.0.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let server = ServerProcess::spawn_logging(&dir, &["--auth-token", TOKEN], "trace", log.into());
    let encoded: String = form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/ws?token={encoded}", server.addr)).await.expect("upgrade");
    ws.next().await.expect("hello").expect("hello");
    drop(ws);
    let http = reqwest::Client::new();
    let refused = http.get(server.url("/v1/sessions?token=wrong-token-value")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let allowed = http.get(server.url("/v1/sessions")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    server.kill();
    let written = std::fs::read_to_string(&log_path).expect("log");
    assert!(written.lines().count() > 5, "the trace log was written:\n{written}");
    for secret in [TOKEN, encoded.as_str(), "wrong-token-value"] {
        assert!(!written.contains(secret), "{secret} is in the log");
    }
}
