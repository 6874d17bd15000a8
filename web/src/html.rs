//! HTML built so that every value is escaped: markup enters only as `&'static str`
//! ([`Html::raw`]), everything else through [`Html::text`], which escapes it.

use std::fmt::{self, Display, Write};

/// Escapes `s` for HTML text and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes `s` for a URL query value or path segment (unreserved characters stay).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A piece of HTML. Static markup goes in with [`Html::raw`]; any other value (a task's code,
/// payload, error, a number) with [`Html::text`], escaped.
#[derive(Debug, Default, Clone)]
pub(crate) struct Html(String);

impl Html {
    pub(crate) fn new() -> Self {
        Self(String::with_capacity(4096))
    }

    /// Markup written in this crate's source: only a `&'static str` is taken unescaped.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// A value, escaped (its `Display` text).
    pub(crate) fn text(&mut self, value: impl Display) -> &mut Self {
        let s = value.to_string();
        self.0.push_str(&escape(&s));
        self
    }

    /// Another piece built the same way.
    pub(crate) fn push(&mut self, other: &Html) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    /// `<tag>value</tag>` with the value escaped.
    pub(crate) fn el(
        &mut self,
        open: &'static str,
        value: impl Display,
        close: &'static str,
    ) -> &mut Self {
        self.raw(open).text(value).raw(close)
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl Display for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_raw_is_not() {
        let mut h = Html::new();
        h.raw("<td>")
            .text("\"><img src=x onerror=alert(1)>'<script>")
            .raw("</td>");
        assert_eq!(
            h.into_string(),
            "<td>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&lt;script&gt;</td>"
        );
    }

    #[test]
    fn url_encoding_keeps_unreserved() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_encode("order-1_x.y~"), "order-1_x.y~");
    }
}
