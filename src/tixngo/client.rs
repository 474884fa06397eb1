//! The HTTP client of the diff endpoint (SPEC §4.2): HTTPS (plain HTTP to loopback only), no
//! redirects, timeouts, retries with backoff and `Retry-After`, a cap on the body. Every HTTP
//! outcome is classified here, once, into success, a retry, or an [`Error`] with its exit code.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};
use ureq::{Agent, Proxy};

use super::api_key::ApiKey;
use super::dump::Dumps;
use super::wire::{LIMIT_PARAM, PAGINATION_KEY_PARAM};
use crate::error::Error;

/// Connecting longer than this is a failed attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt (request to last byte) longer than this is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The first retry waits about this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The TIXNGO interface URL, checked: `https://…/organizer/tickets`, or `http://` to loopback.
#[derive(Clone, Debug)]
pub struct ApiUrl {
    /// Without a trailing slash.
    base: String,
    loopback: bool,
    /// The host as the URL names it, for messages and the proxy rules.
    host: String,
    port: u16,
}

impl ApiUrl {
    /// Parses and checks the URL; every failure is a configuration error (exit 78).
    pub fn parse(text: &str) -> Result<ApiUrl, Error> {
        let bad = |why: &str| Error::Config(format!("the API URL {}: {why}", redact(text)));
        let uri: Uri = text.trim().parse().map_err(|_| bad("is not a valid URL"))?;
        let host = uri.host().ok_or_else(|| bad("has no host"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(
                "must not hold credentials (the API key comes from TIXNGO_API_KEY or --api-key-file)",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query string"));
        }
        let loopback = is_loopback(host);
        let default_port = if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        };
        let port = uri.port_u16().unwrap_or(default_port);
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            Some("http") => {
                return Err(bad(
                    "uses plain http:// to a host that is not loopback; TIXNGO is only reached over https://",
                ));
            }
            _ => return Err(bad("must start with https://")),
        }
        if !uri
            .path()
            .trim_end_matches('/')
            .ends_with("/organizer/tickets")
        {
            log::warn!(
                "the API URL {} does not end in /organizer/tickets, as the TIXNGO interface URL does",
                redact(text)
            );
        }
        Ok(ApiUrl {
            base: text.trim().trim_end_matches('/').to_owned(),
            loopback,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// The diff request for a key (`None` or empty: the start of the feed), at `path` (which
    /// starts with `/`) under the API URL.
    fn diff_url(&self, path: &str, key: Option<&str>, limit: u32) -> String {
        let mut url = format!("{}{path}?{LIMIT_PARAM}={limit}", self.base);
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            url.push_str(&format!("&{PAGINATION_KEY_PARAM}={}", percent_encode(key)));
        }
        url
    }
}

/// 127.0.0.0/8, ::1 and localhost.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL as messages show it: scheme, host and path only (no credentials, no query).
pub fn redact(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}{path}")
        }
        None => without_query.chars().take(200).collect(),
    }
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How the client reaches TIXNGO and what it keeps, besides the URL and the key.
#[derive(Debug, Default)]
pub struct Connection {
    /// `--max-response-mb`, in bytes: the cap on a decoded body.
    pub max_body_bytes: u64,
    /// `--ca-file`: extra PEM root certificates.
    pub ca_file: Option<PathBuf>,
    /// `--dump-dir`: where each response is kept.
    pub dumps: Option<Dumps>,
    /// `--diff-path` (starting with `/`) and `--api-key-header`: the real contract is not public.
    pub diff_path: String,
    pub api_key_header: String,
}

/// Fetches diff pages.
pub struct Client {
    agent: Agent,
    url: ApiUrl,
    api_key: ApiKey,
    max_body_bytes: u64,
    dumps: Option<Dumps>,
    /// The proxy requests go through (host:port), for messages.
    proxy: Option<String>,
    /// The diff endpoint's path and the API key's header (the real contract is not public).
    diff_path: String,
    api_key_header: String,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt (after at least `retry_after` when the server said so); `what` is
    /// the warning's first words, `error` what the run fails with when no attempt is left.
    Transient {
        what: String,
        error: Error,
        retry_after: Option<Duration>,
    },
    /// Final: retrying cannot help.
    Final(Error),
}

impl Failure {
    fn unavailable(what: String, retry_after: Option<Duration>) -> Failure {
        Failure::Transient {
            error: Error::Unavailable(what.clone()),
            what,
            retry_after,
        }
    }
}

/// How much of an error answer's body is read (for its message and the dump).
const ERROR_BODY_BYTES: u64 = 64 * 1024;
/// How many characters of server-supplied text a message shows.
const SERVER_TEXT_CHARS: usize = 200;

impl Client {
    /// Builds the client; an unusable `--ca-file` or proxy variable is a configuration error.
    pub fn new(url: ApiUrl, api_key: ApiKey, connection: Connection) -> Result<Client, Error> {
        let proxy = proxy_for(&url)?;
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("tixngo-feedback/{}", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .accept_encoding("gzip")
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .tls_config(tls_config(connection.ca_file.as_deref())?)
            .proxy(proxy.clone());
        Ok(Client {
            agent: config.build().into(),
            url,
            api_key,
            max_body_bytes: connection.max_body_bytes,
            dumps: connection.dumps,
            proxy: proxy.map(|proxy| format!("{}:{}", proxy.host(), proxy.port())),
            diff_path: connection.diff_path,
            api_key_header: connection.api_key_header,
        })
    }

    /// Fetches one page from `key`, retrying transient failures until `deadline`. Returns the
    /// complete body, not yet parsed. Each wait is our backoff plus the server's `Retry-After`
    /// (a floor, never a reason to come back sooner: SPEC §7); a wait that does not fit in
    /// what is left of the deadline ends the fetch with the last failure.
    pub fn fetch(
        &self,
        key: Option<&str>,
        limit: u32,
        deadline: Instant,
    ) -> Result<Vec<u8>, Error> {
        let url = self.url.diff_url(&self.diff_path, key, limit);
        let mut attempt = 1u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Unavailable(format!(
                    "the --timeout deadline was reached before {} answered",
                    self.url.host
                )));
            }
            let (what, error, retry_after) =
                match self.attempt(&url, remaining.min(ATTEMPT_TIMEOUT)) {
                    Ok(body) => return Ok(body),
                    Err(Failure::Final(error)) => return Err(error),
                    Err(Failure::Transient {
                        what,
                        error,
                        retry_after,
                    }) => (what, error, retry_after),
                };
            let wait = backoff(attempt) + retry_after.unwrap_or_default();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if wait >= remaining {
                log::debug!(
                    "{what}; no time left for attempt {} (wait {wait:?}, {remaining:?} left)",
                    attempt + 1
                );
                return Err(error);
            }
            attempt += 1;
            log::warn!(
                "{what}; retrying in {:.1} s (attempt {attempt})",
                wait.as_secs_f64()
            );
            sleep(wait);
        }
    }

    fn attempt(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, Failure> {
        let mut response = self
            .agent
            .get(url)
            .header(&self.api_key_header, self.api_key.expose())
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| self.transport_failure(&e))?;
        let status = response.status().as_u16();
        log::debug!("TIXNGO answered HTTP {status}");
        if (200..=299).contains(&status) {
            let body = self.read_body(&mut response)?;
            self.dump(url, status, &body);
            return Ok(body);
        }
        let retry_after = retry_after(&response);
        let location = response
            .headers()
            .get("location")
            .map(|value| origin(&String::from_utf8_lossy(value.as_bytes())));
        let body = response
            .body_mut()
            .with_config()
            .limit(ERROR_BODY_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        self.dump(url, status, &body);
        Err(self.classify(status, location, retry_after, &body, url))
    }

    /// A 2xx body, read to the end under the cap (which counts decoded bytes).
    fn read_body(
        &self,
        response: &mut ureq::http::Response<ureq::Body>,
    ) -> Result<Vec<u8>, Failure> {
        let host = &self.url.host;
        response
            .body_mut()
            .with_config()
            .limit(self.max_body_bytes)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Failure::Final(Error::BadData(format!(
                    "the response is larger than the --max-response-mb cap of {} MiB (decoded)",
                    self.max_body_bytes / (1024 * 1024)
                ))),
                ureq::Error::Decompress(..) => Failure::Final(Error::BadData(format!(
                    "the compressed response cannot be decoded ({})",
                    self.server_text(&e.to_string())
                ))),
                ureq::Error::Timeout(_) => Failure::unavailable(
                    format!("reading the response body timed out ({host}: {e})"),
                    None,
                ),
                other => Failure::unavailable(
                    format!(
                        "the response body was cut short ({host}: {})",
                        self.server_text(&other.to_string())
                    ),
                    None,
                ),
            })
    }

    /// Keeps a response in `--dump-dir`, with the request's query (never the key: a header).
    fn dump(&self, url: &str, status: u16, body: &[u8]) {
        if let Some(dumps) = &self.dumps {
            dumps.keep(
                url.split_once('?').map_or("", |(_, query)| query),
                status,
                body,
            );
        }
    }

    /// The one place where an answer other than 2xx becomes a retry or an error.
    fn classify(
        &self,
        status: u16,
        location: Option<String>,
        retry_after: Option<Duration>,
        body: &[u8],
        url: &str,
    ) -> Failure {
        let what = format!("HTTP {} from {}", status_text(status), self.url.host);
        match status {
            300..=399 => Failure::Final(Error::Redirected {
                status,
                target: location.map_or_else(
                    || "an unnamed location".to_owned(),
                    |target| self.server_text(&target),
                ),
            }),
            401 | 403 => Failure::Final(Error::Unauthorized { status }),
            429 => Failure::Transient {
                what,
                error: Error::RateLimited,
                retry_after,
            },
            408 | 500 | 502 | 503 | 504 => Failure::unavailable(what, retry_after),
            400..=499 => Failure::Final(Error::Rejected {
                status,
                url: redact(url),
                reason: error_message(body)
                    .map(|message| format!(" ({})", self.server_text(&message)))
                    .unwrap_or_default(),
            }),
            _ => Failure::Final(Error::Unavailable(what)),
        }
    }

    /// Classifies a failure before any status was received.
    fn transport_failure(&self, error: &ureq::Error) -> Failure {
        let detail = self.server_text(&error.to_string());
        let host = &self.url.host;
        let peer = match &self.proxy {
            Some(proxy) => format!("the proxy {proxy}"),
            None => format!("{host}:{}", self.url.port),
        };
        match error {
            ureq::Error::HostNotFound => Failure::Final(self.unresolved(&detail)),
            ureq::Error::Io(io) if is_unknown_name(io) => Failure::Final(self.unresolved(&detail)),
            // A resolver that is down or slow says nothing about the name: on match day a DNS
            // outage must read as TIXNGO unreachable (retried, then 69), not as a typo (78).
            ureq::Error::Timeout(ureq::Timeout::Resolve) => Failure::unavailable(
                format!("the name {host} could not be resolved in time ({detail})"),
                None,
            ),
            _ if is_certificate_refusal(error) => Failure::Final(Error::Config(format!(
                "the TLS certificate of {host} is not trusted ({detail}): behind a private CA or a TLS-inspecting proxy, give its root certificate with --ca-file (TIXNGO_CA_FILE)"
            ))),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => Failure::Final(
                Error::Unavailable(format!("TLS with {host} failed ({detail})")),
            ),
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => Failure::Final(Error::Config(
                format!("the request cannot be built ({detail})"),
            )),
            ureq::Error::Timeout(_) => {
                Failure::unavailable(format!("the request timed out ({host}: {detail})"), None)
            }
            _ => Failure::unavailable(format!("cannot reach TIXNGO at {peer} ({detail})"), None),
        }
    }

    /// A name that does not resolve: a typo in the URL or the proxy, never retried.
    fn unresolved(&self, detail: &str) -> Error {
        match &self.proxy {
            Some(proxy) => Error::Config(format!(
                "the proxy host of {proxy} does not resolve ({detail}): check HTTPS_PROXY"
            )),
            None => Error::Config(format!(
                "the host {} does not resolve ({detail}): check --api-url (TIXNGO_API_URL) for a typo",
                self.url.host
            )),
        }
    }

    /// The one way server-supplied text enters a message: the API key scrubbed (as sent, or
    /// percent-encoded in any way: then the text is shown decoded), control characters escaped,
    /// at most [`SERVER_TEXT_CHARS`] characters.
    fn server_text(&self, text: &str) -> String {
        let key = self.api_key.expose();
        let decoded = percent_decode(text);
        let text = if decoded.contains(key) {
            &decoded
        } else {
            text
        };
        let scrubbed = text.replace(key, "<API key>");
        let mut shown = String::new();
        for (count, c) in scrubbed.chars().enumerate() {
            if count == SERVER_TEXT_CHARS {
                shown.push('…');
                break;
            }
            if c.is_control() {
                shown.extend(c.escape_default());
            } else {
                shown.push(c);
            }
        }
        shown
    }
}

/// Decodes `%XX` escapes (lossily: the result is only searched and shown).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A status with its standard reason phrase ("503 Service Unavailable"), never the server's.
fn status_text(status: u16) -> String {
    ureq::http::StatusCode::from_u16(status)
        .map_or_else(|_| status.to_string(), |code| code.to_string())
}

/// Whether TLS failed because the server's certificate is not trusted (rustls's refusal may
/// come wrapped in an I/O error).
fn is_certificate_refusal(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Io(_) => {
            error.to_string().contains("invalid peer certificate")
        }
        _ => false,
    }
}

/// Whether a lookup failed because the name does not exist (the resolver's definite answer:
/// `EAI_NONAME`, `EAI_NODATA`), as opposed to a resolver that could not answer (`EAI_AGAIN`,
/// `EAI_FAIL`), which is a transient failure like any other. std reports both as an I/O error
/// whose text is `getaddrinfo`'s.
fn is_unknown_name(error: &std::io::Error) -> bool {
    let text = error.to_string();
    text.starts_with("failed to lookup address information")
        && [
            "Name or service not known",
            "No address associated with hostname",
            "nodename nor servname provided",
        ]
        .iter()
        .any(|answer| text.contains(answer))
}

/// The `message` (or `error`) string of a JSON error body, as TIXNGO words its refusals.
fn error_message(body: &[u8]) -> Option<String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["message", "error"]
        .iter()
        .find_map(|field| value.get(field)?.as_str().map(str::to_owned))
}

/// A URL as a redirect's target is shown: scheme and host (and port) only. Its path or query
/// may hold anything, the API key included.
fn origin(url: &str) -> String {
    match url.trim().split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => "a relative location".to_owned(),
    }
}

/// The root certificates, all at once: those of `--ca-file`, the platform's CA bundle and
/// Mozilla's set built into the binary. A private CA or a TLS-inspecting proxy is trusted besides
/// the public roots, never instead of them, and a host without a CA bundle still verifies.
fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, Error> {
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::from(trusted_roots(ca_file)?))
        .build())
}

/// The root certificates TLS connections trust (TIXNGO's and a PostgreSQL store's): those of
/// `--ca-file`, the platform's CA bundle and the built-in ones.
pub(crate) fn trusted_roots(ca_file: Option<&Path>) -> Result<Vec<Certificate<'static>>, Error> {
    root_certificates(ca_file, platform_bundle().as_deref())
}

/// The certificates of `--ca-file`, of the CA bundle and the built-in ones, in that order.
fn root_certificates(
    ca_file: Option<&Path>,
    bundle: Option<&Path>,
) -> Result<Vec<Certificate<'static>>, Error> {
    let mut roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    if let Some(pem) = bundle.and_then(|bundle| std::fs::read(bundle).ok()) {
        roots.extend(certificates(&pem));
    }
    roots.extend(built_in_roots());
    Ok(roots)
}

/// Mozilla's root certificates, as built into the binary.
fn built_in_roots() -> impl Iterator<Item = Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
}

/// The platform's CA bundle as OpenSSL finds it: `SSL_CERT_FILE`, else the first of the usual
/// places of the Linux and BSD distributions that is not empty.
fn platform_bundle() -> Option<PathBuf> {
    const BUNDLES: [&str; 5] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(BUNDLES.iter().map(PathBuf::from))
        .find(|path| std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0))
}

/// The certificates of a PEM text; other items and unreadable ones are passed over.
fn certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect()
}

/// `--ca-file`: at least one certificate, every PEM item readable; anything else is 78.
fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let shown = path.display();
    let bad = |why: String| Error::Config(format!("the --ca-file {shown} {why}"));
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let mut roots = Vec::new();
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => roots.push(certificate),
            Ok(_) => {}
            Err(e) => return Err(bad(format!("is not valid PEM ({e})"))),
        }
    }
    if roots.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(roots)
}

/// The proxy for the API URL, read from the environment as curl reads it for an `https://`
/// URL: `https_proxy`/`HTTPS_PROXY`, else `all_proxy`/`ALL_PROXY`, unless `no_proxy`/`NO_PROXY`
/// names the host. Loopback is never proxied (the simulator, a tunnel on this host).
fn proxy_for(url: &ApiUrl) -> Result<Option<Proxy>, Error> {
    if url.loopback {
        return Ok(None);
    }
    let Some((name, value)) = first_env(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
    else {
        return Ok(None);
    };
    if let Some((_, list)) = first_env(&["no_proxy", "NO_PROXY"])
        && no_proxy_matches(&list, &url.host)
    {
        log::debug!("{} is in NO_PROXY: no proxy", url.host);
        return Ok(None);
    }
    log::debug!("through the proxy of {name}: {}", origin(&value));
    Proxy::new(&value).map(Some).map_err(|e| {
        Error::Config(format!(
            "{name} is not a usable proxy URL ({}: {e})",
            redact(&value)
        ))
    })
}

/// The first of these variables that is set and not blank, with its name.
fn first_env(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|&name| {
        let value = std::env::var(name).ok()?;
        Some((name, value.trim().to_owned())).filter(|(_, value)| !value.is_empty())
    })
}

/// curl's `NO_PROXY` rule: `*` matches every host; otherwise each comma-separated name matches
/// that host and its subdomains (a leading dot changes nothing), case-insensitively; an address
/// matches itself.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        !entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}")))
    })
}

/// `Retry-After` in seconds or as an HTTP date, as a wait from now.
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    parse_retry_after(value, SystemTime::now())
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: a random wait between half and all of
/// `FIRST_BACKOFF * 2^(retry-1)`, capped.
fn backoff(retry: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_roots_are_the_ca_file_the_bundle_and_the_built_in_ones_together() {
        let ca = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tls/ca.pem"
        ));
        let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert!(built_in > 100, "Mozilla's set: {built_in}");
        let count = |ca_file, bundle| super::root_certificates(ca_file, bundle).unwrap().len();
        assert_eq!(count(None, None), built_in);
        assert_eq!(count(Some(ca), None), built_in + 1);
        assert_eq!(count(None, Some(ca)), built_in + 1);
        assert_eq!(count(Some(ca), Some(ca)), built_in + 2);
    }

    #[test]
    fn only_a_definite_no_from_the_resolver_is_an_unknown_name() {
        let lookup = |answer: &str| {
            super::is_unknown_name(&std::io::Error::other(format!(
                "failed to lookup address information: {answer}"
            )))
        };
        assert!(lookup("Name or service not known"));
        assert!(lookup("No address associated with hostname"));
        assert!(!lookup("Temporary failure in name resolution"));
        assert!(!lookup("Non-recoverable failure in name resolution"));
        assert!(!super::is_unknown_name(&std::io::Error::other(
            "Name or service not known"
        )));
    }

    use super::*;

    #[test]
    fn https_and_loopback_http_are_accepted() {
        for url in [
            "https://api.tixngo.io/organizer/tickets",
            "https://api.tixngo.io/organizer/tickets/",
            "http://127.0.0.1:8080/organizer/tickets",
            "http://127.1.2.3/organizer/tickets",
            "http://localhost:9/organizer/tickets",
            "http://[::1]:9/organizer/tickets",
        ] {
            ApiUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn plain_http_elsewhere_and_odd_urls_are_configuration_errors() {
        for url in [
            "http://api.tixngo.io/organizer/tickets",
            "http://10.0.0.1/organizer/tickets",
            "http://localhost.evil.com/organizer/tickets",
            "ftp://api.tixngo.io/organizer/tickets",
            "api.tixngo.io/organizer/tickets",
            "https://user:secret@api.tixngo.io/organizer/tickets",
            "https://api.tixngo.io/organizer/tickets?x=1",
            "not a url",
            "",
        ] {
            let error = ApiUrl::parse(url).expect_err(url);
            assert_eq!(error.exit_code().code(), 78, "{url}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }

    #[test]
    fn diff_url_omits_an_empty_key_and_encodes_the_key() {
        let url = ApiUrl::parse("https://x.io/organizer/tickets/").unwrap();
        assert_eq!(
            url.diff_url("/diff", None, 1000),
            "https://x.io/organizer/tickets/diff?limit=1000"
        );
        assert_eq!(
            url.diff_url("/diff", Some(""), 5),
            "https://x.io/organizer/tickets/diff?limit=5"
        );
        assert_eq!(
            url.diff_url("/diff", Some("a b/c+d=é&"), 5),
            "https://x.io/organizer/tickets/diff?limit=5&paginationKey=a%20b%2Fc%2Bd%3D%C3%A9%26"
        );
        assert_eq!(
            url.diff_url("/v2/changes", None, 5),
            "https://x.io/organizer/tickets/v2/changes?limit=5"
        );
    }

    #[test]
    fn redact_drops_credentials_and_query() {
        assert_eq!(
            redact("https://u:p@h.io:8443/organizer/tickets?key=x#f"),
            "https://h.io:8443/organizer/tickets"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for retry in 1..40 {
            let wait = backoff(retry);
            let ceiling = FIRST_BACKOFF
                .saturating_mul(1 << (retry - 1).min(16))
                .min(MAX_BACKOFF);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "retry {retry}: {wait:?}"
            );
        }
    }

    fn client(key: &str) -> Client {
        let url = ApiUrl::parse("http://127.0.0.1:9/organizer/tickets").unwrap();
        Client::new(url, ApiKey::new(key.into()).unwrap(), Connection::default()).unwrap()
    }

    #[test]
    fn server_text_never_holds_the_key_however_it_is_encoded() {
        let client = client("k3y/+~");
        for text in ["bad k3y/+~", "bad k3y%2F%2B%7E", "bad %6b%33%79/+%7e"] {
            assert_eq!(client.server_text(text), "bad <API key>", "{text}");
        }
        assert_eq!(client.server_text("a\u{1b}[2J\n"), "a\\u{1b}[2J\\n");
        let long = client.server_text(&"x".repeat(1000));
        assert_eq!(long.chars().count(), SERVER_TEXT_CHARS + 1);
    }

    #[test]
    fn a_redirect_target_is_shown_as_scheme_and_host() {
        assert_eq!(
            origin("https://u:p@h.io:8443/k3y/x?key=k3y#f"),
            "https://h.io:8443"
        );
        assert_eq!(origin("https://h.io?k3y"), "https://h.io");
        assert_eq!(origin("/k3y/relative"), "a relative location");
    }

    #[test]
    fn no_proxy_matches_as_curl_does() {
        for (list, host, matches) in [
            ("*", "api.tixngo.io", true),
            ("tixngo.io", "api.tixngo.io", true),
            (".tixngo.io", "api.tixngo.io", true),
            ("tixngo.io", "tixngo.io", true),
            (" example.org , API.TIXNGO.IO ", "api.tixngo.io", true),
            ("10.0.0.1", "10.0.0.1", true),
            ("ngo.io", "api.tixngo.io", false),
            ("api.tixngo.io.evil", "api.tixngo.io", false),
            ("", "api.tixngo.io", false),
            (",,", "api.tixngo.io", false),
        ] {
            assert_eq!(no_proxy_matches(list, host), matches, "{list:?} {host}");
        }
    }
}
