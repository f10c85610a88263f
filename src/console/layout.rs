//! Provides the console's page frame (head, navigation, who is logged in, logout) and the
//! small partials every page uses: CSRF fields, label chips, status badges.
//!
//! maud escapes every interpolated string; nothing here marks text as pre-escaped except
//! the fixed doctype. Pages load only `/ui/assets/*` (the CSP allows nothing else).

use maud::{html, Markup, DOCTYPE};

use super::guard::Visitor;
use crate::domain::labels::Labels;

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Schedules,
    None,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · wakeplane" }
            link rel="stylesheet" href="/ui/assets/console.css";
            script src="/ui/assets/console.js" defer {}
        }
    }
}

/// A page for a visitor: navigation, then `body`.
pub fn page(v: &Visitor, title: &str, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/ui/" { "wakeplane" }
                    nav {
                        a href="/ui/" aria-current=[(nav == Nav::Overview).then_some("page")] { "Overview" }
                        a href="/ui/schedules" aria-current=[(nav == Nav::Schedules).then_some("page")] { "Schedules" }
                    }
                    div.who {
                        span #live-status.live-status {}
                        @if let Some(role) = v.role_name() {
                            span.role #role { (role) }
                        }
                        @if v.auth_on {
                            form.inline method="post" action="/ui/logout" {
                                (csrf(v))
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page without navigation (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { a.brand href="/ui/" { "wakeplane" } }
                main.narrow { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field every form carries.
pub fn csrf(v: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// Labels as `key=value` chips.
pub fn labels(labels: &Labels) -> Markup {
    html! {
        span.labels {
            @for (k, v) in labels.iter() {
                span.chip { (k) "=" (v) }
            }
        }
    }
}

/// A run or actor status as a coloured badge.
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "succeeded" | "armed" => "ok",
        "failed" | "dead_lettered" | "restarting" => "bad",
        "running" | "claimed" | "firing" | "pending" | "retry_scheduled" => "busy",
        _ => "idle",
    };
    html! { span class={ "badge " (class) } { (status) } }
}

/// `s` percent-encoded for a query string value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("/ui/schedules"), "/ui/schedules");
        assert_eq!(
            encode_query("team=data,env in (a,b)&x"),
            "team%3Ddata%2Cenv%20in%20%28a%2Cb%29%26x"
        );
    }

    #[test]
    fn text_is_escaped() {
        let m = badge("<script>");
        assert!(m.into_string().contains("&lt;script&gt;"));
    }
}
