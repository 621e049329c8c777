//! Who may reach the server. A server on a developer's laptop is reachable by
//! every web page they visit: WebSockets have no CORS, and DNS rebinding
//! turns a foreign page into a "same-origin" one. Three checks, decided here
//! and nowhere else:
//!
//! - **Host allowlist** (every route): the `Host` must be an IP address,
//!   `localhost` (or a name under `.localhost`), or an `--allowed-hosts`
//!   entry. A rebinding page sends its own name, so it is refused before
//!   anything else runs; an IP address cannot be rebound. `--allowed-hosts *`
//!   turns the check off.
//! - **Origin check** (the WebSocket upgrade and every state-changing call):
//!   no `Origin` (a non-browser client), the server's own origin, or an
//!   `--cors-origins` entry; anything else is refused.
//! - **Token** (the API, when `--auth-token` is set): `Authorization: Bearer`
//!   or the form-decoded `?token=`, compared in constant time.
//!
//! Each refusal is a 403 (401 for the token) in the project's error shape,
//! counted in `rejected_inputs` by its code. No check logs a URL or a token.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::config::{Config, Secret};
use crate::error::AppError;

/// The decisions of this module, precomputed from the settings.
#[derive(Debug)]
pub struct Access {
    /// Hostnames accepted in `Host` besides IP addresses, lowercased; `None`
    /// when the check is off (`--allowed-hosts *`).
    allowed_hosts: Option<HostAllowlist>,
    /// Origins accepted besides the server's own, normalised.
    allowed_origins: OriginAllowlist,
    token: Option<Secret>,
}

#[derive(Debug)]
struct HostAllowlist {
    exact: HashSet<String>,
    /// Entries given as `.example.com`: that domain and its subdomains.
    suffixes: Vec<String>,
}

#[derive(Debug)]
enum OriginAllowlist {
    /// `--cors-origins '*'`: every origin, an explicit opt-out.
    Any,
    Listed(HashSet<String>),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not one this server answers to (DNS rebinding).
    Host,
    /// A browser page of a foreign origin.
    Origin,
    /// The token was missing or wrong.
    Token,
}

impl Refusal {
    fn error(self) -> AppError {
        match self {
            Self::Host => AppError::Forbidden {
                code: "forbidden_host",
                message: "this server does not answer to that Host; add it with --allowed-hosts".into(),
            },
            Self::Origin => AppError::Forbidden {
                code: "forbidden_origin",
                message: "requests from this origin are not allowed; add it with --cors-origins".into(),
            },
            Self::Token => AppError::Unauthorized,
        }
    }
}

impl Access {
    /// The checks the settings ask for.
    pub fn new(config: &Config) -> Self {
        let allowed_hosts = (!config.allowed_hosts.iter().any(|entry| entry.trim() == "*")).then(|| {
            let mut exact: HashSet<String> = HashSet::from(["localhost".to_owned()]);
            let mut suffixes = vec![".localhost".to_owned()];
            for entry in &config.allowed_hosts {
                let entry = entry.trim().to_ascii_lowercase();
                match entry.strip_prefix('.') {
                    Some(domain) => {
                        exact.insert(domain.to_owned());
                        suffixes.push(format!(".{domain}"));
                    }
                    None => {
                        exact.insert(hostname_of(&entry).unwrap_or(entry));
                    }
                }
            }
            HostAllowlist { exact, suffixes }
        });
        let allowed_origins = if config.cors_origins.iter().any(|origin| origin.trim() == "*") {
            OriginAllowlist::Any
        } else {
            OriginAllowlist::Listed(config.cors_origins.iter().filter_map(|origin| normalized_origin(origin)).collect())
        };
        Self { allowed_hosts, allowed_origins, token: config.auth_token.clone() }
    }

    /// The host and origin checks for one request.
    pub fn check_host_and_origin(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = request_host(uri, headers);
        if let (Some(allowlist), Some(host)) = (&self.allowed_hosts, &host) {
            let name = hostname_of(host).ok_or(Refusal::Host)?;
            let allowed = is_ip_literal(&name)
                || allowlist.exact.contains(&name)
                || allowlist.suffixes.iter().any(|suffix| name.ends_with(suffix));
            if !allowed {
                return Err(Refusal::Host);
            }
        }
        if !needs_origin_check(method, headers) {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        let origin = origin.to_str().ok().and_then(normalized_origin).ok_or(Refusal::Origin)?;
        let listed = match &self.allowed_origins {
            OriginAllowlist::Any => true,
            OriginAllowlist::Listed(origins) => origins.contains(&origin),
        };
        if listed || host.as_deref().is_some_and(|host| same_origin(&origin, host)) {
            Ok(())
        } else {
            Err(Refusal::Origin)
        }
    }

    /// The token check for one request: a bearer header, or `?token=` for the
    /// browser's WebSocket, which cannot set headers.
    pub fn check_token(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(expected) = &self.token else { return Ok(()) };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| expected.matches(given.as_bytes())) {
            return Ok(());
        }
        let query = uri.query().unwrap_or_default();
        // The package builds the URL with URLSearchParams, so the value is form-encoded.
        let query_token = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "token");
        match query_token {
            Some((_, given)) if expected.matches(given.as_bytes()) => Ok(()),
            _ => Err(Refusal::Token),
        }
    }
}

impl Secret {
    /// Whether `given` is the secret, in time independent of where they differ.
    fn matches(&self, given: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(given).into()
    }
}

/// Middleware: the host and origin checks, on every route.
pub async fn guard_host_and_origin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match state.access.check_host_and_origin(request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refuse(&state, refusal),
    }
}

/// Middleware: the token check, on the API.
pub async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match state.access.check_token(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refuse(&state, refusal),
    }
}

fn refuse(state: &AppState, refusal: Refusal) -> Response {
    let error = refusal.error();
    state.metrics.reject(error.code());
    error.into_response()
}

/// Safe methods change nothing, and a foreign page cannot read their answer
/// (CORS); the WebSocket upgrade is a GET that CORS does not cover.
fn needs_origin_check(method: &Method, headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    upgrade || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authority the client addressed: `Host`, or the URI's (HTTP/2).
fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    match headers.get(header::HOST) {
        Some(value) => Some(value.to_str().map_or_else(|_| String::new(), str::to_ascii_lowercase)),
        None => uri.authority().map(|authority| authority.as_str().to_ascii_lowercase()),
    }
}

/// The hostname of an authority, lowercased, IPv6 in brackets.
fn hostname_of(authority: &str) -> Option<String> {
    let authority = Authority::from_str(authority).ok()?;
    Some(authority.host().to_ascii_lowercase())
}

/// Whether a hostname is an IP address (IPv6 in brackets), which DNS cannot rebind.
fn is_ip_literal(name: &str) -> bool {
    let bare = name.strip_prefix('[').and_then(|name| name.strip_suffix(']')).unwrap_or(name);
    bare.parse::<IpAddr>().is_ok()
}

/// `scheme://host:port` with the port always written, lowercased; `None` for
/// `null` and anything that is not an http(s) origin.
fn normalized_origin(origin: &str) -> Option<String> {
    let uri = Uri::from_str(origin.trim().trim_end_matches('/')).ok()?;
    let scheme = uri.scheme()?;
    let default_port = if *scheme == Scheme::HTTPS {
        443
    } else if *scheme == Scheme::HTTP {
        80
    } else {
        return None;
    };
    let authority = uri.authority()?;
    if uri.path_and_query().is_some_and(|path| path.as_str() != "/") {
        return None;
    }
    let port = authority.port_u16().unwrap_or(default_port);
    Some(format!("{}://{}:{port}", scheme.as_str(), authority.host().to_ascii_lowercase()))
}

/// Whether a normalised origin names the authority the request addressed; a
/// `Host` without a port means the origin scheme's default one.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, origin_authority)) = origin.split_once("://") else { return false };
    let Ok(host) = Authority::from_str(host) else { return false };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host_authority = format!("{}:{}", host.host().to_ascii_lowercase(), host.port_u16().unwrap_or(default_port));
    origin_authority == host_authority
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access(tweak: impl FnOnce(&mut Config)) -> Access {
        let mut config = Config::for_data_dir("unused");
        tweak(&mut config);
        Access::new(&config)
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap())).collect()
    }

    #[test]
    fn origins_normalise_to_scheme_host_and_port() {
        assert_eq!(normalized_origin("http://LocalHost:8080").as_deref(), Some("http://localhost:8080"));
        assert_eq!(normalized_origin("https://example.com/").as_deref(), Some("https://example.com:443"));
        assert_eq!(normalized_origin("http://[::1]").as_deref(), Some("http://[::1]:80"));
        for refused in ["null", "", "file://", "ws://localhost:1", "http://a.example/path", "not a url"] {
            assert_eq!(normalized_origin(refused), None, "{refused}");
        }
    }

    #[test]
    fn same_origin_compares_host_and_port_with_defaults() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("https://chat.example:443", "chat.example"));
        assert!(same_origin("http://[::1]:80", "[::1]"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("http://localhost:8080", "127.0.0.1:8080"));
    }

    #[test]
    fn allowed_host_entries_may_carry_a_port_or_name_a_domain_and_its_subdomains() {
        let access = access(|config| config.allowed_hosts = vec!["Box.Lan:9000".into(), ".dev.example".into()]);
        let get = |host: &str| {
            access.check_host_and_origin(&Method::GET, &Uri::from_static("/"), &headers(&[(header::HOST, host)]))
        };
        for allowed in ["box.lan:8080", "dev.example", "a.dev.example:1", "localhost:8080", "[::1]:8080"] {
            assert_eq!(get(allowed), Ok(()), "{allowed}");
        }
        for refused in ["evil.example:8080", "notdev.example", "localhost.evil.example", ""] {
            assert_eq!(get(refused), Err(Refusal::Host), "{refused}");
        }
    }

    #[test]
    fn ip_addresses_always_pass_names_need_listing_and_a_star_turns_the_check_off() {
        let access = access(|config| config.bind = "0.0.0.0:8080".parse().unwrap());
        let get = |access: &Access, host: &str| {
            access.check_host_and_origin(&Method::GET, &Uri::from_static("/"), &headers(&[(header::HOST, host)]))
        };
        for allowed in ["192.168.1.5:8080", "[fe80::1]:8080", "10.0.0.1", "app.localhost:5173"] {
            assert_eq!(get(&access, allowed), Ok(()), "{allowed}");
        }
        assert_eq!(get(&access, "chat.example"), Err(Refusal::Host));
        let open = super::tests::access(|config| config.allowed_hosts = vec!["*".into()]);
        assert_eq!(get(&open, "chat.example"), Ok(()));
    }

    #[test]
    fn a_wildcard_cors_entry_allows_every_origin() {
        let access = access(|config| config.cors_origins = vec!["*".into()]);
        let request = headers(&[(header::HOST, "localhost:8080"), (header::ORIGIN, "https://any.example")]);
        assert_eq!(access.check_host_and_origin(&Method::POST, &Uri::from_static("/v1/sessions"), &request), Ok(()));
    }

    #[test]
    fn the_query_token_is_form_decoded() {
        let access = access(|config| config.auth_token = Some(Secret::from_str("a+b/c=d e").unwrap()));
        let with_query = |query: &'static str| access.check_token(&Uri::from_static(query), &HeaderMap::new());
        assert_eq!(with_query("/v1/ws?token=a%2Bb%2Fc%3Dd+e"), Ok(()));
        assert_eq!(with_query("/v1/ws?x=1&token=a%2Bb%2Fc%3Dd%20e"), Ok(()));
        assert_eq!(with_query("/v1/ws?token=a+b/c=d+e"), Err(Refusal::Token), "an undecoded + is a space");
        assert_eq!(with_query("/v1/ws?token=a%2Bb%2Fc%3Dd"), Err(Refusal::Token));
        assert_eq!(with_query("/v1/ws"), Err(Refusal::Token));
    }
}
