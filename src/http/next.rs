//! Where a browser goes after signing in (or out): the `next` rule of
//! SPEC 3 in one place, for the sign-in form, its redirect and the pages
//! that send anonymous visitors to sign in.

/// `next` is followed only when it is a local path: one `/` followed by
/// neither `/` nor `\`, with no control characters or spaces (browsers drop
/// tabs and newlines, which would turn `/\t/evil` into `//evil`) and only
/// ASCII. Anything else goes to `/`.
pub fn safe_next(next: &str) -> &str {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|b| b.is_ascii_graphic());
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(safe_next("/account/sessions?x=1"), "/account/sessions?x=1");
        assert_eq!(safe_next("/"), "/");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "evil",
            "/\t/evil",
            "/ä",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
