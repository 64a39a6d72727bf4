//! Where a browser goes after signing in (or out): the `next` rule of
//! SPEC 3 and 9 in one place, for the sign-in form, its redirect, the
//! sign-out page and the pages that send anonymous visitors to sign in.
//!
//! A local path is always followed; an absolute URL only when SPEC 9
//! permits it for the settings in force (the public URL's host, or within
//! the cookie domain). This module decides only where to go; it reads no
//! request.

use crate::settings::Settings;

/// `next` is followed only when it is a local path (see [`local_next`]) or
/// an absolute URL that SPEC 9 permits: scheme `https` (or `http` when
/// `SESSIOND_PUBLIC_URL` is itself `http`), no userinfo, no backslash, and a
/// host that is the public URL's, or the cookie domain, or ends with `.` and
/// the cookie domain. Anything else goes to `/`.
pub fn safe_next<'a>(next: &'a str, settings: &Settings) -> &'a str {
    if next.starts_with('/') {
        return local_next(next);
    }
    if permitted_absolute(next, settings) { next } else { "/" }
}

/// A local path: one `/` followed by neither `/` nor `\`, with no control
/// characters or spaces (browsers drop tabs and newlines, which would turn
/// `/\t/evil` into `//evil`) and only ASCII. Anything else goes to `/`.
pub fn local_next(next: &str) -> &str {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|b| b.is_ascii_graphic());
    if local { next } else { "/" }
}

/// The origin (`https://wiki.example.com:8443`) of a `next` that
/// [`safe_next`] let through as an absolute URL; `None` for a local path.
/// A page whose form ends there must allow it in `form-action`: browsers
/// check that policy on the redirect after the post too.
pub fn absolute_origin(next: &str) -> Option<String> {
    let (scheme, rest) = next.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

fn permitted_absolute(next: &str, settings: &Settings) -> bool {
    // Visible ASCII only: browsers drop tabs and newlines and read `\` as
    // `/`, either of which could move the host.
    if !next.bytes().all(|b| b.is_ascii_graphic()) || next.contains('\\') {
        return false;
    }
    let Some((scheme, rest)) = next.split_once("://") else {
        return false;
    };
    let http_allowed = settings.public_url.as_ref().is_some_and(|public| !public.https);
    let scheme_ok = scheme.eq_ignore_ascii_case("https")
        || (http_allowed && scheme.eq_ignore_ascii_case("http"));
    if !scheme_ok {
        return false;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return false;
    }
    let Some(host) = crate::access_rules::normalize_host(authority) else {
        return false;
    };
    // `normalize_host` drops a final `.`; a URL that had one is refused
    // rather than compared (`example.com.` is another name to a browser's
    // cookie jar).
    if authority.split(':').next().is_some_and(|name| name.ends_with('.')) {
        return false;
    }
    let public_host = settings.public_url.as_ref().is_some_and(|public| public.host == host);
    let in_cookie_domain = settings.cookie_domain.as_deref().is_some_and(|domain| {
        host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|start| start.len() > 1 && start.ends_with('.'))
    });
    public_host || in_cookie_domain
}

#[cfg(test)]
mod tests {
    use super::{local_next, safe_next};

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(local_next("/account/sessions?x=1"), "/account/sessions?x=1");
        assert_eq!(local_next("/"), "/");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "evil",
            "/\t/evil",
            "/ä",
        ] {
            assert_eq!(local_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn absolute_next_follows_spec_9() {
        let settings = |pairs: &[(&str, &str)]| {
            let file: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            crate::settings::Settings::resolve(
                std::path::Path::new(".env"),
                &file,
                |_| None,
                &Default::default(),
            )
            .unwrap()
        };
        let https = settings(&[
            ("SESSIOND_PUBLIC_URL", "https://auth.example.com"),
            ("DJANGO_SESSION_COOKIE_DOMAIN", "example.com"),
        ]);
        for good in [
            "https://auth.example.com/",
            "https://example.com/x?y=1",
            "https://wiki.example.com/page",
            "https://a.b.example.com:8443/",
            "HTTPS://WIKI.EXAMPLE.COM/",
        ] {
            assert_eq!(safe_next(good, &https), good, "{good}");
        }
        for bad in [
            "http://wiki.example.com/",
            "https://example.com.evil.test/",
            "https://evilexample.com/",
            "https://wiki.example.com@evil.test/",
            "https://evil.test\\@wiki.example.com/",
            "https://evil.test\\.example.com/",
            "https:\\\\wiki.example.com/",
            "//wiki.example.com/",
            "https://wiki.example.com./",
            "https:/wiki.example.com/",
            "https://wiki.example.com\t/",
            "javascript://wiki.example.com/%0aalert(1)",
            "ftp://wiki.example.com/",
        ] {
            assert_eq!(safe_next(bad, &https), "/", "{bad}");
        }
        let http = settings(&[("SESSIOND_PUBLIC_URL", "http://auth.test:8000")]);
        assert_eq!(safe_next("http://auth.test:9000/x", &http), "http://auth.test:9000/x");
        assert_eq!(safe_next("http://wiki.auth.test/", &http), "/");
        let none = settings(&[]);
        assert_eq!(safe_next("https://auth.example.com/", &none), "/");
        assert_eq!(safe_next("/local", &none), "/local");
        assert_eq!(
            super::absolute_origin("https://Wiki.example.com:8443/x?y"),
            Some("https://wiki.example.com:8443".into())
        );
        assert_eq!(super::absolute_origin("/local"), None);
    }
}
