//! A request as the handlers see it: method, path, query, headers, body and
//! the client's address, already read and bounded.
//!
//! The server (see `server.rs`) builds it from tiny_http's request; nothing
//! here knows tiny_http. Helpers read headers, cookies, query strings and
//! forms without ever failing on bad bytes: malformed input yields `None` or
//! is skipped.

use std::net::IpAddr;

/// The methods sessiond answers; any other is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string, e.g. `/login`.
    pub path: String,
    /// The raw query string without `?`, possibly empty.
    pub query: String,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The address of the TCP peer.
    pub peer_addr: Option<IpAddr>,
}

impl Request {
    /// A request with no headers or body, for tests and tools.
    pub fn new(method: Method, url: &str) -> Request {
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (url.to_owned(), String::new()),
        };
        Request { method, path, query, headers: Vec::new(), body: Vec::new(), peer_addr: None }
    }

    /// The first value of a header, by lowercase name.
    pub fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == lowercase_name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of a cookie, from the first `Cookie` header that has it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(header, _)| header == "cookie")
            .flat_map(|(_, value)| cookie::Cookie::split_parse(value.as_str()))
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The body parsed as an HTML form (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Form {
        Form(form_urlencoded::parse(&self.body).into_owned().collect())
    }

    /// The client's address: the TCP peer, or with `trust_proxy_headers` the
    /// last address in `X-Forwarded-For` (the one our own proxy added).
    pub fn client_addr(&self, trust_proxy_headers: bool) -> String {
        self.client_ip(trust_proxy_headers).map(|addr| addr.to_string()).unwrap_or_default()
    }

    /// [`Request::client_addr`] as an address, `None` when there is none.
    pub fn client_ip(&self, trust_proxy_headers: bool) -> Option<IpAddr> {
        if trust_proxy_headers
            && let Some(forwarded) = self.header("x-forwarded-for").and_then(last_forwarded_addr)
        {
            return Some(forwarded);
        }
        self.peer_addr
    }

    /// Whether the answer is JSON (the API) rather than a page.
    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/") || self.path == "/graphql"
    }

    pub fn user_agent(&self) -> &str {
        self.header("user-agent").unwrap_or("")
    }
}

/// The rightmost well-formed address in an `X-Forwarded-For` value.
pub fn last_forwarded_addr(value: &str) -> Option<IpAddr> {
    value.rsplit(',').next().and_then(|last| last.trim().parse().ok())
}

/// Decoded form fields.
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of a field, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap_or("")
    }

    /// Every value of a field (checkbox lists).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut request = Request::new(Method::Get, "/");
        request.headers.push(("cookie".into(), "a=1; sessionid=abc; b=2".into()));
        assert_eq!(request.cookie("sessionid").as_deref(), Some("abc"));
        assert_eq!(request.cookie("missing"), None);
    }

    #[test]
    fn forwarded_for_takes_the_last_address() {
        assert_eq!(last_forwarded_addr("1.2.3.4, 10.0.0.9").unwrap().to_string(), "10.0.0.9");
        assert_eq!(last_forwarded_addr("garbage"), None);
    }
}
