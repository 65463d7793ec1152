//! Completing a `/confluence link` one-time link as a browser without
//! JavaScript does: open it, sign in to Confluence, confirm, carrying the
//! page's double-submit cookie and hidden fields. For tests that need a
//! person linked without headless Chromium (the browser path is proven in
//! `self_linking`).
//!
//! It must never skip a step the person takes (each form is posted as the
//! page served it), so a test through it proves what a person could do.

/// The value of hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The `pagehook_link` cookie a page set.
pub fn link_cookie(answer: &reqwest::blocking::Response) -> String {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("pagehook_link="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("the page sets its double-submit cookie")
}

/// Opens `link`, signs in as `username` with `password` (an empty username:
/// `password` is a personal access token) and, with `confirm`, confirms.
/// Returns each page's status and body.
pub fn link_over_http(
    link: &str,
    username: &str,
    password: &str,
    confirm: bool,
) -> Vec<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut pages = Vec::new();
    let start = client.get(link).send().unwrap();
    let status = start.status().as_u16();
    if status != 200 {
        pages.push((status, start.text().unwrap()));
        return pages;
    }
    let cookie = link_cookie(&start);
    let html = start.text().unwrap();
    let csrf = hidden(&html, "csrf");
    pages.push((status, html));
    let signed = client
        .post(format!("{link}/sign-in"))
        .header("cookie", format!("pagehook_link={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .unwrap();
    let status = signed.status().as_u16();
    let cookie = if status == 200 {
        link_cookie(&signed)
    } else {
        cookie
    };
    let html = signed.text().unwrap();
    pages.push((status, html.clone()));
    if status != 200 || !confirm {
        return pages;
    }
    let done = client
        .post(format!("{link}/confirm"))
        .header("cookie", format!("pagehook_link={cookie}"))
        .form(&[
            ("csrf", hidden(&html, "csrf").as_str()),
            ("confirm", hidden(&html, "confirm").as_str()),
        ])
        .send()
        .unwrap();
    pages.push((done.status().as_u16(), done.text().unwrap()));
    pages
}
