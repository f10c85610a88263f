//! Defines which network addresses HTTP targets may connect to: the deny list
//! (`WAKEPLANE_HTTP_TARGET_DENY`, default link-local and the cloud metadata addresses) and
//! the optional strict allowlist (`WAKEPLANE_HTTP_TARGET_ALLOW`).
//!
//! Pure rules on addresses: no DNS, no sockets. The executor applies them to every address
//! it is about to connect to (after resolution and on each redirect); validation applies
//! them to addresses written literally in a URL.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The variable holding the deny list (named in refusals).
pub const DENY_VAR: &str = "WAKEPLANE_HTTP_TARGET_DENY";
/// The variable holding the allowlist (named in refusals).
pub const ALLOW_VAR: &str = "WAKEPLANE_HTTP_TARGET_ALLOW";

/// The deny list when `WAKEPLANE_HTTP_TARGET_DENY` is unset: IPv4 and IPv6 link-local
/// (where 169.254.169.254, the metadata service of AWS, GCP, Azure and others, lives),
/// AWS's IPv6 metadata address, Alibaba Cloud's metadata address and Azure's wire server.
pub const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "168.63.129.16/32",
];

/// Where HTTP targets may connect. Deny wins over allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPolicy {
    deny: Vec<IpNet>,
    /// `None`: every address not denied; `Some`: only these.
    allow: Option<Vec<IpNet>>,
}

/// Why an address was refused, naming the variable and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub addr: IpAddr,
    pub rule: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} is refused by {}", self.addr, self.rule)
    }
}

impl std::error::Error for Refusal {}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy {
            deny: DEFAULT_DENY
                .iter()
                .filter_map(|c| IpNet::from_str(c).ok())
                .collect(),
            allow: None,
        }
    }
}

impl NetPolicy {
    /// No rule at all (tests and embedders that check addresses themselves).
    pub fn unrestricted() -> NetPolicy {
        NetPolicy {
            deny: Vec::new(),
            allow: None,
        }
    }

    /// Refuses every address (a client that could not be built with the real rules).
    pub fn refuse_all() -> NetPolicy {
        NetPolicy {
            deny: ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|c| IpNet::from_str(c).ok())
                .collect(),
            allow: None,
        }
    }

    /// From the two variables' values (`None` = unset). `deny` of `none` means no deny
    /// rule; an unset `deny` means [`DEFAULT_DENY`]. An error names the variable.
    pub fn from_settings(
        deny: Option<&str>,
        allow: Option<&str>,
    ) -> Result<NetPolicy, (&'static str, String)> {
        let mut policy = NetPolicy::default();
        if let Some(deny) = deny {
            policy.deny = parse_cidrs(deny).map_err(|e| (DENY_VAR, e))?;
        }
        if let Some(allow) = allow {
            let list = parse_cidrs(allow).map_err(|e| (ALLOW_VAR, e))?;
            if list.is_empty() {
                return Err((
                    ALLOW_VAR,
                    "`none` would refuse every address; leave it unset instead".into(),
                ));
            }
            policy.allow = Some(list);
        }
        Ok(policy)
    }

    /// `Ok` when a connection to `addr` is allowed; otherwise the rule that refuses it.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refusal> {
        let addr = addr.to_canonical();
        if let Some(net) = self.deny.iter().find(|n| n.contains(&addr)) {
            return Err(Refusal {
                addr,
                rule: format!("{DENY_VAR} rule {net}"),
            });
        }
        match &self.allow {
            Some(allow) if !allow.iter().any(|n| n.contains(&addr)) => Err(Refusal {
                addr,
                rule: format!(
                    "{ALLOW_VAR} (not in {})",
                    allow
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Checks a URL's host when it is an IP address literal (`http://169.254.169.254/`,
    /// `http://[fe80::1]/`, also WHATWG spellings such as `http://2852039166/`). Names
    /// are not resolved here; they are checked when the run connects.
    pub fn check_url_literal(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        // The URL parser has already normalised the host: IPv4 in dotted decimal, IPv6
        // in brackets.
        let host = url.host_str().unwrap_or("");
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match IpAddr::from_str(host) {
            Ok(addr) => self.check(addr),
            Err(_) => Ok(()),
        }
    }

    /// The rules, for the start-up log line.
    pub fn describe(&self) -> String {
        let list = |v: &[IpNet]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        match &self.allow {
            Some(allow) => format!("deny {} allow only {}", list(&self.deny), list(allow)),
            None => format!("deny {}", list(&self.deny)),
        }
    }
}

/// Parses `a.b.c.d/n,addr,…` (a bare address is a single host); `none` is the empty list.
fn parse_cidrs(spec: &str) -> Result<Vec<IpNet>, String> {
    if spec.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = match IpNet::from_str(item) {
            Ok(net) => net.trunc(),
            Err(_) => match IpAddr::from_str(item) {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(format!(
                        "{item:?} is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address"
                    ))
                }
            },
        };
        out.push(net);
    }
    if out.is_empty() {
        return Err("no CIDR given (write `none` for an empty list)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_denies_link_local_and_metadata_only() {
        let p = NetPolicy::default();
        let e = p.check(ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "address 169.254.169.254 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 169.254.0.0/16"
        );
        assert!(p.check(ip("fe80::1")).is_err());
        assert!(p.check(ip("fd00:ec2::254")).is_err());
        assert!(p.check(ip("100.100.100.200")).is_err());
        // IPv4-mapped IPv6 is the same address.
        assert!(p.check(ip("::ffff:169.254.169.254")).is_err());
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("10.1.2.3")).is_ok());
        assert!(p.check(ip("2001:db8::1")).is_ok());
    }

    #[test]
    fn deny_and_allow_lists_parse_and_deny_wins() {
        let p = NetPolicy::from_settings(Some("127.0.0.0/8, ::1"), Some("127.0.0.0/8,10.0.0.0/8"))
            .unwrap();
        assert_eq!(
            p.check(ip("127.0.0.1")).unwrap_err().rule,
            "WAKEPLANE_HTTP_TARGET_DENY rule 127.0.0.0/8"
        );
        assert_eq!(
            p.check(ip("::1")).unwrap_err().rule,
            "WAKEPLANE_HTTP_TARGET_DENY rule ::1/128"
        );
        assert!(p.check(ip("10.9.9.9")).is_ok());
        assert_eq!(
            p.check(ip("192.168.1.1")).unwrap_err().rule,
            "WAKEPLANE_HTTP_TARGET_ALLOW (not in 127.0.0.0/8,10.0.0.0/8)"
        );
        // An explicit deny list replaces the default one.
        assert!(p.check(ip("169.254.169.254")).is_err()); // not in the allowlist
        let open = NetPolicy::from_settings(Some("none"), None).unwrap();
        assert!(open.check(ip("169.254.169.254")).is_ok());
        assert_eq!(
            NetPolicy::from_settings(Some("10.0.0.1/33"), None).unwrap_err(),
            (
                DENY_VAR,
                "\"10.0.0.1/33\" is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address"
                    .to_string()
            )
        );
        assert_eq!(
            NetPolicy::from_settings(None, Some("none")).unwrap_err().0,
            ALLOW_VAR
        );
        assert!(NetPolicy::from_settings(Some(" , "), None).is_err());
    }

    #[test]
    fn url_literals_in_every_spelling_are_checked() {
        let p = NetPolicy::default();
        for u in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "https://[fe80::1]:8443/x",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let url = reqwest::Url::parse(u).unwrap();
            assert!(p.check_url_literal(&url).is_err(), "{u}");
        }
        for u in ["http://metadata.example/", "http://127.0.0.1:8080/"] {
            let url = reqwest::Url::parse(u).unwrap();
            assert!(p.check_url_literal(&url).is_ok(), "{u}");
        }
    }
}
