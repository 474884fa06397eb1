//! The HTTP client of the diff endpoint (SPEC §4.2): HTTPS (plain HTTP to loopback only), no
//! redirects, timeouts, retries with backoff and `Retry-After`, a cap on the body. Every HTTP
//! outcome is classified here, once, into success, a retry, or an [`Error`] with its exit code.

use std::fmt;
use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;
use ureq::http::Uri;

use super::wire::{API_KEY_HEADER, DIFF_PATH, LIMIT_PARAM, PAGINATION_KEY_PARAM};
use crate::error::Error;

/// Connecting longer than this is a failed attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt (request to last byte) longer than this is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The first retry waits about this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The organizer's API key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Checks a key (already trimmed): not empty, and valid as a header value.
    pub fn new(key: String) -> Result<ApiKey, String> {
        if key.is_empty() {
            return Err("is empty".to_owned());
        }
        if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("holds characters that cannot be sent in an HTTP header".to_owned());
        }
        Ok(ApiKey(key))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The TIXNGO interface URL, checked: `https://…/organizer/tickets`, or `http://` to loopback.
#[derive(Clone, Debug)]
pub struct ApiUrl {
    /// Without a trailing slash.
    base: String,
    loopback: bool,
}

impl ApiUrl {
    /// Parses and checks the URL; every failure is a configuration error (exit 78).
    pub fn parse(text: &str) -> Result<ApiUrl, Error> {
        let bad = |why: &str| Error::Config(format!("the API URL {}: {why}", redact(text)));
        let uri: Uri = text.trim().parse().map_err(|_| bad("is not a valid URL"))?;
        let host = uri.host().ok_or_else(|| bad("has no host"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(
                "must not hold credentials (the key comes from TIXNGO_API_KEY or the key file)",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query string"));
        }
        let loopback = is_loopback(host);
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
fn is_loopback(host: &str) -> bool {
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

/// Fetches diff pages.
pub struct Client {
    agent: Agent,
    url: ApiUrl,
    api_key: ApiKey,
    max_body_bytes: u64,
    /// The diff endpoint's path and the API key's header (the real contract is not public).
    diff_path: String,
    api_key_header: String,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt (after `retry_after` when the server said so); `error` is what the
    /// run fails with when no attempt is left.
    Transient {
        error: Error,
        retry_after: Option<Duration>,
    },
    /// Final: retrying cannot help.
    Final(Error),
}

impl Client {
    pub fn new(url: ApiUrl, api_key: ApiKey, max_body_bytes: u64) -> Client {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("tixngo-feedback/{}", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .accept_encoding("")
            .timeout_connect(Some(CONNECT_TIMEOUT));
        // Loopback never goes through a proxy from the environment.
        let config = if url.loopback {
            config.proxy(None)
        } else {
            config
        };
        Client {
            agent: config.build().into(),
            url,
            api_key,
            max_body_bytes,
            diff_path: format!("/{DIFF_PATH}"),
            api_key_header: API_KEY_HEADER.to_owned(),
        }
    }

    /// The same client for another diff path (starting with `/`) and API key header.
    pub fn with_endpoint(self, diff_path: &str, api_key_header: &str) -> Client {
        Client {
            diff_path: diff_path.to_owned(),
            api_key_header: api_key_header.to_owned(),
            ..self
        }
    }

    /// Fetches one page from `key`, retrying transient failures until `deadline`. Returns the
    /// complete body, not yet parsed.
    pub fn fetch(
        &self,
        key: Option<&str>,
        limit: u32,
        deadline: Instant,
    ) -> Result<Vec<u8>, Error> {
        let url = self.url.diff_url(&self.diff_path, key, limit);
        let mut retries = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Unavailable(
                    "the --timeout deadline was reached before TIXNGO answered".into(),
                ));
            }
            let (error, retry_after) = match self.attempt(&url, remaining.min(ATTEMPT_TIMEOUT)) {
                Ok(body) => return Ok(body),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Transient { error, retry_after }) => (error, retry_after),
            };
            retries += 1;
            let wait = retry_after.unwrap_or_else(|| backoff(retries));
            let remaining = deadline.saturating_duration_since(Instant::now());
            if wait >= remaining {
                log::debug!("no time left for retry {retries} (wait {wait:?}, {remaining:?} left)");
                return Err(error);
            }
            log::warn!("{error}: retry {retries} in {:.1} s", wait.as_secs_f64());
            sleep(wait);
        }
    }

    fn attempt(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, Failure> {
        let mut response = self
            .agent
            .get(url)
            .header(&self.api_key_header, &self.api_key.0)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| transport_failure(&e))?;
        let status = response.status().as_u16();
        log::debug!("TIXNGO answered HTTP {status}");
        match status {
            200..=299 => response
                .body_mut()
                .with_config()
                .limit(self.max_body_bytes)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => Failure::Final(Error::BadData(format!(
                        "the response is larger than the --max-response-mb cap of {} MiB",
                        self.max_body_bytes / (1024 * 1024)
                    ))),
                    other => Failure::Transient {
                        error: Error::Unavailable(match other {
                            ureq::Error::Timeout(_) => {
                                format!("reading the response body timed out ({other})")
                            }
                            _ => format!("the response body was cut short ({other})"),
                        }),
                        retry_after: None,
                    },
                }),
            300..=399 => {
                let target = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| "an unnamed location".to_owned(), redact);
                Err(Failure::Final(Error::Redirected { status, target }))
            }
            401 | 403 => Err(Failure::Final(Error::Unauthorized { status })),
            429 => Err(Failure::Transient {
                error: Error::RateLimited,
                retry_after: retry_after(&response),
            }),
            408 | 500 | 502 | 503 | 504 => Err(Failure::Transient {
                error: Error::Unavailable(format!("HTTP {}", response.status())),
                retry_after: retry_after(&response),
            }),
            400..=499 => Err(Failure::Final(Error::Rejected {
                status,
                url: redact(url),
            })),
            _ => Err(Failure::Final(Error::Unavailable(format!(
                "HTTP {}",
                response.status()
            )))),
        }
    }
}

/// Classifies a failure before any status was received.
fn transport_failure(error: &ureq::Error) -> Failure {
    match error {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            Failure::Final(Error::Unavailable(format!("TLS failed ({error})")))
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => Failure::Final(Error::Config(format!(
            "the request cannot be built ({error})"
        ))),
        _ => Failure::Transient {
            error: Error::Unavailable(match error {
                ureq::Error::Timeout(_) => format!("the request timed out ({error})"),
                _ => format!("cannot reach TIXNGO ({error})"),
            }),
            retry_after: None,
        },
    }
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

    #[test]
    fn api_key_debug_is_redacted_and_bad_keys_are_refused() {
        let key = ApiKey::new("s3cr3t".into()).unwrap();
        assert!(!format!("{key:?}").contains("s3cr3t"));
        assert!(ApiKey::new(String::new()).is_err());
        assert!(ApiKey::new("a b".into()).is_err());
        assert!(ApiKey::new("a\nb".into()).is_err());
    }
}
