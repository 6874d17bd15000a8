//! Database URLs in messages: never with their password.

/// `url` without its password: `mysql://user:secret@host/db` becomes
/// `mysql://user:***@host/db`. Anything that does not look like `scheme://user:pass@…` is
/// returned as it is.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..rest_start],
            &userinfo[..colon],
            &url[rest_start + at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn strips_the_password_only() {
        assert_eq!(
            redact("mysql://root:s3cret@db:3306/app?x=1"),
            "mysql://root:***@db:3306/app?x=1"
        );
        assert_eq!(redact("mysql://root@db/app"), "mysql://root@db/app");
        assert_eq!(redact("mysql://u:p@ss@db/app"), "mysql://u:***@db/app");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact("sqlite://a.db?mode=rwc"), "sqlite://a.db?mode=rwc");
    }
}
