//! Defines schedule labels (Kubernetes' key and value rules) and label selectors: the
//! equality- and set-based grammar parsed into a typed list of requirements.
//!
//! Pure: parsing, validation and matching only. The store turns a [`Selector`] into SQL;
//! nothing here knows how labels are stored.

use std::collections::BTreeMap;

/// A schedule's labels, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// At most this many labels on one schedule.
pub const MAX_LABELS: usize = 64;

/// Every problem with a schedule's labels, as `(field, message)`: `labels` when there are
/// too many, `labels.<key>` for each bad key or value.
pub fn problems(labels: &Labels) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if labels.len() > MAX_LABELS {
        out.push((
            "labels".to_string(),
            format!(
                "must have at most {MAX_LABELS} labels (got {})",
                labels.len()
            ),
        ));
    }
    for (k, v) in labels {
        if let Some(p) = key_problem(k).or_else(|| value_problem(v)) {
            out.push((format!("labels.{k}"), p));
        }
    }
    out
}

/// Why a label key is not valid, or `None` when it is.
pub fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if let Some(problem) = prefix_problem(p) {
            return Some(format!("key {key:?}: prefix {problem}"));
        }
    }
    if name.is_empty() {
        return Some(format!("key {key:?}: name must not be empty"));
    }
    if name.len() > 63 {
        return Some(format!("key {key:?}: name must be at most 63 characters"));
    }
    if !is_name(name) {
        return Some(format!(
            "key {key:?}: name must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
        ));
    }
    None
}

/// Why a label value is not valid, or `None` when it is.
pub fn value_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some(format!("value {value:?} must be at most 63 characters"));
    }
    if !value.is_empty() && !is_name(value) {
        return Some(format!(
            "value {value:?} must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
        ));
    }
    None
}

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS subdomain: at most 253 characters, dot-separated lower-case labels of letters,
/// digits and '-', each starting and ending with a letter or digit.
fn prefix_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("must not be empty");
    }
    if p.len() > 253 {
        return Some("must be at most 253 characters");
    }
    let ok = p.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    });
    (!ok).then_some("must be a DNS subdomain (lower-case letters, digits, '-' and '.')")
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Equals { key: String, value: String },
    /// `key!=value`: also holds when the key is absent.
    NotEquals { key: String, value: String },
    /// `key in (a,b)`.
    In { key: String, values: Vec<String> },
    /// `key notin (a,b)`: also holds when the key is absent.
    NotIn { key: String, values: Vec<String> },
    /// `key`.
    Exists { key: String },
    /// `!key`.
    NotExists { key: String },
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::Equals { key, value } => labels.get(key) == Some(value),
            Requirement::NotEquals { key, value } => labels.get(key) != Some(value),
            Requirement::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn { key, values } => {
                !labels.get(key).is_some_and(|v| values.contains(v))
            }
            Requirement::Exists { key } => labels.contains_key(key),
            Requirement::NotExists { key } => !labels.contains_key(key),
        }
    }
}

/// A parsed label selector: requirements that must all hold. Empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses Kubernetes' selector syntax; the error names what is wrong and where.
    pub fn parse(input: &str) -> Result<Selector, String> {
        let mut p = Parser {
            s: input.as_bytes(),
            input,
            at: 0,
        };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at == p.s.len() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.at += 1;
                    p.skip_ws();
                    if p.peek().is_none() {
                        return Err(p.error("expected a requirement after ','"));
                    }
                }
                Some(_) => return Err(p.error("expected ',' between requirements")),
            }
        }
        Ok(Selector { requirements })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    input: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        match self.input.get(self.at..).and_then(|r| r.chars().next()) {
            Some(c) => format!("{what} at position {} (found {c:?})", self.at + 1),
            None => format!("{what} at the end"),
        }
    }

    /// A run of characters that may appear in a key or value.
    fn word(&mut self) -> &str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
        {
            self.at += 1;
        }
        &self.input[start..self.at]
    }

    fn key(&mut self) -> Result<String, String> {
        self.skip_ws();
        let key = self.word().to_string();
        if key.is_empty() {
            return Err(self.error("expected a label key"));
        }
        match key_problem(&key) {
            Some(problem) => Err(problem),
            None => Ok(key),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_ws();
        let value = self.word().to_string();
        match value_problem(&value) {
            Some(problem) => Err(problem),
            None => Ok(value),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.peek() == Some(b'!') {
            self.at += 1;
            let key = self.key()?;
            self.skip_ws();
            if !matches!(self.peek(), None | Some(b',')) {
                return Err(self.error("expected ',' or the end after '!key'"));
            }
            return Ok(Requirement::NotExists { key });
        }
        let key = self.key()?;
        let had_space = self.peek().is_some_and(|c| c.is_ascii_whitespace());
        self.skip_ws();
        match self.peek() {
            None | Some(b',') => Ok(Requirement::Exists { key }),
            Some(b'=') => {
                self.at += 1;
                if self.peek() == Some(b'=') {
                    self.at += 1;
                }
                let value = self.value()?;
                Ok(Requirement::Equals { key, value })
            }
            Some(b'!') if self.s.get(self.at + 1) == Some(&b'=') => {
                self.at += 2;
                let value = self.value()?;
                Ok(Requirement::NotEquals { key, value })
            }
            Some(_) if had_space => {
                let start = self.at;
                let op = self.word().to_string();
                let negated = match op.as_str() {
                    "in" => false,
                    "notin" => true,
                    _ => {
                        self.at = start;
                        return Err(
                            self.error("expected an operator ('=', '==', '!=', 'in' or 'notin')")
                        );
                    }
                };
                let values = self.set()?;
                Ok(if negated {
                    Requirement::NotIn { key, values }
                } else {
                    Requirement::In { key, values }
                })
            }
            Some(_) => Err(self.error("expected an operator ('=', '==', '!=', 'in' or 'notin')")),
        }
    }

    /// `(a, b, …)`: at least one value.
    fn set(&mut self) -> Result<Vec<String>, String> {
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return Err(self.error("expected '(' to open a set of values"));
        }
        self.at += 1;
        let mut values = Vec::new();
        loop {
            let value = self.value()?;
            self.skip_ws();
            if value.is_empty() && matches!(self.peek(), Some(b')')) && values.is_empty() {
                return Err(self.error("expected at least one value in the set"));
            }
            values.push(value);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {
                    self.at += 1;
                    return Ok(values);
                }
                _ => return Err(self.error("expected ',' or ')' in a set of values")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(s: &str) -> Vec<Requirement> {
        Selector::parse(s).unwrap().requirements().to_vec()
    }

    #[test]
    fn every_form_parses_to_its_requirement() {
        let k = || "team".to_string();
        assert_eq!(
            req("team=data"),
            [Requirement::Equals {
                key: k(),
                value: "data".into()
            }]
        );
        assert_eq!(
            req("team==data"),
            [Requirement::Equals {
                key: k(),
                value: "data".into()
            }]
        );
        assert_eq!(
            req("team != data"),
            [Requirement::NotEquals {
                key: k(),
                value: "data".into()
            }]
        );
        assert_eq!(
            req("team in (data, ml)"),
            [Requirement::In {
                key: k(),
                values: vec!["data".into(), "ml".into()]
            }]
        );
        assert_eq!(
            req("team notin (data)"),
            [Requirement::NotIn {
                key: k(),
                values: vec!["data".into()]
            }]
        );
        assert_eq!(req("team"), [Requirement::Exists { key: k() }]);
        assert_eq!(req(" !team "), [Requirement::NotExists { key: k() }]);
        assert_eq!(
            req("team="),
            [Requirement::Equals {
                key: k(),
                value: String::new()
            }]
        );
        assert_eq!(
            req("example.com/team=data,env in (prod,dev),!legacy").len(),
            3
        );
        assert!(req("").is_empty());
    }

    #[test]
    fn matching_follows_kubernetes() {
        let l = labels(&[("team", "data"), ("env", "prod")]);
        let m = |s: &str| Selector::parse(s).unwrap().matches(&l);
        assert!(m("team=data,env"));
        assert!(!m("team=ml"));
        assert!(m("owner!=bob"), "!= holds when the key is absent");
        assert!(m("owner notin (bob)"), "notin holds when the key is absent");
        assert!(!m("env notin (prod,dev)"));
        assert!(m("env in (prod,dev)"));
        assert!(!m("!env"));
        assert!(m("!owner"));
        assert!(m(""));
    }

    #[test]
    fn malformed_selectors_say_what_and_where() {
        let e = |s: &str| Selector::parse(s).unwrap_err();
        assert_eq!(
            e("team=data,"),
            "expected a requirement after ',' at the end"
        );
        assert_eq!(
            e("team in data"),
            "expected '(' to open a set of values at position 9 (found 'd')"
        );
        assert_eq!(
            e("team in (a,b"),
            "expected ',' or ')' in a set of values at the end"
        );
        assert_eq!(
            e("team in ()"),
            "expected at least one value in the set at position 10 (found ')')"
        );
        assert_eq!(
            e("team like x"),
            "expected an operator ('=', '==', '!=', 'in' or 'notin') at position 6 (found 'l')"
        );
        assert_eq!(
            e("team<3"),
            "expected an operator ('=', '==', '!=', 'in' or 'notin') at position 5 (found '<')"
        );
        assert_eq!(e("=x"), "expected a label key at position 1 (found '=')");
        assert!(e("-team=x").contains("start and end with a letter or digit"));
        assert!(e("team=-x").starts_with("value \"-x\""));
        assert_eq!(
            e("a=b c=d"),
            "expected ',' between requirements at position 5 (found 'c')"
        );
        assert_eq!(
            e("!team=x"),
            "expected ',' or the end after '!key' at position 6 (found '=')"
        );
        assert!(e("Bad_Prefix/team=x").contains("prefix must be a DNS subdomain"));
    }

    #[test]
    fn keys_and_values_follow_the_kubernetes_rules() {
        assert_eq!(key_problem("app.kubernetes.io/name"), None);
        assert_eq!(key_problem("team"), None);
        assert!(key_problem(&"a".repeat(64)).is_some());
        assert!(key_problem("/team").is_some());
        assert!(key_problem("team/").is_some());
        assert!(key_problem("te am").is_some());
        assert_eq!(value_problem(""), None);
        assert_eq!(value_problem("v1.2_x-y"), None);
        assert!(value_problem(&"a".repeat(64)).is_some());
        assert!(value_problem("x_").is_some());
    }
}
