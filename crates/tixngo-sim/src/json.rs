//! JSON written straight into a string, in the field order of the wire format.

use std::fmt::Write as _;

/// Writes a JSON object straight into a string, fields in the order given. The generator writes
/// hundreds of megabytes, several times faster this way than through `serde_json::Value`, and
/// the events keep SPEC §4.1's field order, which makes the feed easier to read.
pub(crate) struct JsonObject<'a> {
    out: &'a mut String,
    empty: bool,
}

impl JsonObject<'_> {
    /// Writes `{`, what `fill` adds, `}`.
    pub(crate) fn write(out: &mut String, fill: impl FnOnce(&mut JsonObject<'_>)) {
        out.push('{');
        fill(&mut JsonObject { out, empty: true });
        out.push('}');
    }

    /// Field names are identifiers of this file: they need no escaping.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) -> &mut Self {
        write_json_string(self.key(key), value);
        self
    }

    pub(crate) fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    pub(crate) fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    pub(crate) fn object(
        &mut self,
        key: &str,
        fill: impl FnOnce(&mut JsonObject<'_>),
    ) -> &mut Self {
        JsonObject::write(self.key(key), fill);
        self
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
fn write_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            control if control < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}
