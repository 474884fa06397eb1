//! A request as the simulator received it: method, path, query and headers.

/// One request as the simulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as sent, not decoded (so `//diff` stays visible).
    pub path: String,
    /// The query parameters in order, percent-decoded (`+` as a space).
    pub query: Vec<(String, String)>,
    /// The headers in order, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first query parameter of that name (exact, after decoding).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(parameter, _)| parameter == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parses a request head (request line and headers, CRLF-separated). `None` when it is not
    /// HTTP/1.x: the caller answers 400.
    pub(crate) fn parse(head: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let (method, target, version) = (
            request_line.next()?,
            request_line.next()?,
            request_line.next()?,
        );
        let well_formed = request_line.next().is_none()
            && !method.is_empty()
            && method.bytes().all(|byte| byte.is_ascii_uppercase())
            && !target.is_empty()
            && matches!(version, "HTTP/1.0" | "HTTP/1.1");
        if !well_formed {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
            .collect();
        let mut headers = Vec::new();
        for line in lines.take_while(|line| !line.is_empty()) {
            let (name, value) = line.split_once(':')?;
            let token = !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_graphic());
            if !token {
                return None;
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            headers,
        })
    }
}

/// Decodes `%XX` and `+`; a `%` not followed by two hex digits is kept as is.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while position < bytes.len() {
        let escaped = match bytes[position] {
            b'%' => bytes
                .get(position + 1..position + 3)
                .and_then(|pair| Some((hex_digit(pair[0])?, hex_digit(pair[1])?))),
            _ => None,
        };
        match (bytes[position], escaped) {
            (_, Some((high, low))) => {
                decoded.push(high << 4 | low);
                position += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                position += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                position += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}
