//! Checks the Docker Compose stack in `docker/` against the binary it packages.
//!
//! No Docker engine is needed: `docker/compose.yaml` is parsed as YAML and interpolated
//! the way Compose does (`${VAR:-default}` and friends), `docker/Dockerfile` and
//! `docker/.env.example` are read as text, and both are compared with what the binary
//! really reads (`src/config.rs`, through [`Config::from_lookup`] and its
//! `"WAKEPLANE_…"` literals) and serves (`src/api/mod.rs`). A renamed variable, a moved
//! probe route or a port changed in one file but not the others fails here.
//!
//! Each check runs against every way the stack can be configured from the repository:
//! compose's own defaults (no `.env`), `.env.example` as shipped, and `.env.example` with
//! its commented-out optional settings switched on.
//!
//! When `docker compose` or `docker-compose` is installed, `config -q` validates the file
//! with Compose itself (no engine needed); otherwise that part is skipped. The stack on a
//! real engine is tests/docker_stack.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_norway::Value;
use wakeplane::config::Config;

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn compose_text() -> String {
    read("docker/compose.yaml")
}

fn compose_raw() -> Value {
    serde_norway::from_str::<Value>(&compose_text())
        .unwrap_or_else(|e| panic!("docker/compose.yaml is not valid YAML: {e}"))
}

// ---------------------------------------------------------------------------------------
// What the binary knows
// ---------------------------------------------------------------------------------------

/// Variables the binary reads: the `"WAKEPLANE_…"` literals of src/config.rs, plus
/// `DATABASE_URL` (also read there) and `RUST_LOG` (read by the tracing filter).
fn known_variables() -> BTreeSet<String> {
    let text = read("src/config.rs");
    let mut known: BTreeSet<String> = text
        .match_indices("\"WAKEPLANE_")
        .filter_map(|(i, _)| {
            let rest = &text[i + 1..];
            let name = &rest[..rest.find('"')?];
            is_var_name(name).then(|| name.to_string())
        })
        .collect();
    assert!(
        !known.is_empty(),
        "found no \"WAKEPLANE_…\" literals in src/config.rs"
    );
    assert!(
        text.contains("\"DATABASE_URL\""),
        "src/config.rs no longer reads DATABASE_URL"
    );
    known.insert("DATABASE_URL".into());
    known.insert("RUST_LOG".into());
    known
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every `WAKEPLANE_…` word in `text`, comments included.
fn wakeplane_words(text: &str) -> BTreeSet<String> {
    text.match_indices("WAKEPLANE_")
        .filter(|(i, _)| {
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// Whether the router registers `path` (as a string literal in src/api/mod.rs).
fn served_route(path: &str) -> bool {
    read("src/api/mod.rs").contains(&format!("\"{path}\""))
}

// ---------------------------------------------------------------------------------------
// Compose interpolation
// ---------------------------------------------------------------------------------------

/// Compose's variable substitution: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
/// `${VAR:?e}`, `${VAR?e}`, `${VAR:+a}`, `${VAR+a}` (defaults may nest). `lookup` is
/// called for every variable referenced.
fn interpolate(s: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).unwrap_or_else(|| panic!("unclosed ${{ in {s:?}"));
            out.push_str(&substitute(&body[..end], lookup, s));
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

fn name_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn substitute(body: &str, lookup: &mut dyn FnMut(&str) -> Option<String>, whole: &str) -> String {
    let (name, op) = body.split_at(name_len(body));
    assert!(
        !name.is_empty(),
        "bad substitution ${{{body}}} in {whole:?}"
    );
    let value = lookup(name);
    let set = value.is_some();
    let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let value = value.unwrap_or_default();
    let mut arg = |prefix: &str| op.strip_prefix(prefix).map(|a| interpolate(a, lookup));
    if let Some(default) = arg(":-") {
        if nonempty {
            value
        } else {
            default
        }
    } else if let Some(message) = arg(":?") {
        assert!(nonempty, "compose requires {name}: {message}");
        value
    } else if let Some(alt) = arg(":+") {
        if nonempty {
            alt
        } else {
            String::new()
        }
    } else if let Some(default) = arg("-") {
        if set {
            value
        } else {
            default
        }
    } else if let Some(message) = arg("?") {
        assert!(set, "compose requires {name}: {message}");
        value
    } else if let Some(alt) = arg("+") {
        if set {
            alt
        } else {
            String::new()
        }
    } else {
        assert!(
            op.is_empty(),
            "unsupported substitution ${{{body}}} in {whole:?}"
        );
        value
    }
}

/// `v` with every string interpolated from `vars`.
fn resolve(v: &Value, vars: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(interpolate(s, &mut |k| vars.get(k).cloned())),
        Value::Sequence(items) => Value::Sequence(items.iter().map(|i| resolve(i, vars)).collect()),
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Names of the variables compose.yaml substitutes.
fn interpolated_variables(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            interpolate(s, &mut |k| {
                out.insert(k.to_string());
                None
            });
        }
        Value::Sequence(items) => items.iter().for_each(|i| interpolated_variables(i, out)),
        Value::Mapping(m) => m.values().for_each(|i| interpolated_variables(i, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// .env.example
// ---------------------------------------------------------------------------------------

/// `KEY=value` lines of .env.example; with `optional`, also commented-out `# KEY=value`.
fn env_example(optional: bool) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in read("docker/.env.example").lines() {
        let line = line.trim();
        let (commented, line) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        if commented && !optional {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !is_var_name(key) {
            assert!(commented, ".env.example: bad line {line:?}");
            continue;
        }
        vars.insert(key.to_string(), dotenv_value(value));
    }
    vars
}

fn dotenv_value(raw: &str) -> String {
    let raw = raw.trim();
    for q in ['"', '\''] {
        if let Some(inner) = raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    match raw.find(" #") {
        Some(i) => raw[..i].trim_end().to_string(),
        None => raw.to_string(),
    }
}

/// Every configuration the repository describes: (label, variables set for compose).
fn scenarios() -> Vec<(&'static str, BTreeMap<String, String>)> {
    vec![
        ("compose defaults (no .env)", BTreeMap::new()),
        ("docker/.env.example", env_example(false)),
        (
            "docker/.env.example with its optional settings",
            env_example(true),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Compose accessors
// ---------------------------------------------------------------------------------------

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose
        .get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("compose.yaml has no service {name:?}"))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A service's `environment`, map or list form; `KEY` alone takes the caller's value.
fn environment(svc: &Value, vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match svc.get("environment") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = scalar(k).expect("environment key");
                match v {
                    Value::Null => {
                        if let Some(v) = vars.get(&k) {
                            env.insert(k, v.clone());
                        }
                    }
                    v => {
                        env.insert(k, scalar(v).expect("environment value is a scalar"));
                    }
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = item.as_str().expect("environment entry is a string");
                match item.split_once('=') {
                    Some((k, v)) => {
                        env.insert(k.to_string(), v.to_string());
                    }
                    None => {
                        if let Some(v) = vars.get(item) {
                            env.insert(item.to_string(), v.clone());
                        }
                    }
                }
            }
        }
        Some(other) => panic!("environment is neither a map nor a list: {other:?}"),
    }
    env
}

/// The healthcheck command as one string; panics if missing or disabled.
fn healthcheck_command(svc: &Value, name: &str) -> String {
    let hc = svc
        .get("healthcheck")
        .unwrap_or_else(|| panic!("service {name} has no healthcheck"));
    assert_ne!(
        hc.get("disable").and_then(Value::as_bool),
        Some(true),
        "service {name}'s healthcheck is disabled"
    );
    let test = hc
        .get("test")
        .unwrap_or_else(|| panic!("service {name}'s healthcheck has no test"));
    let command = match test {
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            assert!(
                matches!(words.first().map(String::as_str), Some("CMD" | "CMD-SHELL")),
                "service {name}'s healthcheck test must start with CMD or CMD-SHELL: {words:?}"
            );
            words[1..].join(" ")
        }
        other => panic!("service {name}'s healthcheck test is {other:?}"),
    };
    assert!(
        !command.trim().is_empty(),
        "service {name}'s healthcheck is empty"
    );
    command
}

#[derive(Debug, PartialEq)]
struct PortMapping {
    host_ip: Option<String>,
    published: Option<u16>,
    target: u16,
}

fn ports(svc: &Value) -> Vec<PortMapping> {
    let Some(list) = svc.get("ports") else {
        return vec![];
    };
    let list = list.as_sequence().expect("ports is a list");
    list.iter()
        .map(|p| match p {
            Value::Mapping(_) => PortMapping {
                host_ip: p.get("host_ip").and_then(scalar),
                published: p
                    .get("published")
                    .and_then(scalar)
                    .map(|s| s.parse().expect("published port")),
                target: p
                    .get("target")
                    .and_then(scalar)
                    .and_then(|s| s.parse().ok())
                    .expect("ports: target"),
            },
            other => short_port(&scalar(other).expect("port entry")),
        })
        .collect()
}

/// `[[host_ip:]published:]target[/proto]`.
fn short_port(spec: &str) -> PortMapping {
    let spec = spec.split('/').next().unwrap_or(spec);
    let (front, target) = match spec.rsplit_once(':') {
        Some((f, t)) => (Some(f), t),
        None => (None, spec),
    };
    let target = target
        .parse()
        .unwrap_or_else(|_| panic!("port {spec:?}: bad target"));
    let (host_ip, published) = match front {
        None => (None, None),
        Some(f) => match f.rsplit_once(':') {
            Some((ip, p)) => (
                Some(ip.trim_start_matches('[').trim_end_matches(']').to_string()),
                Some(p),
            ),
            None => (None, Some(f)),
        },
    };
    let published = published.map(|p| {
        p.parse()
            .unwrap_or_else(|_| panic!("port {spec:?}: bad published port"))
    });
    PortMapping {
        host_ip,
        published,
        target,
    }
}

/// A Compose duration (`45s`, `1m30s`, `500ms`, `1h`).
fn compose_duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    assert!(!rest.is_empty(), "empty duration");
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or_else(|| panic!("duration {s:?} needs a unit"));
        let n: f64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {s:?}"));
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            u => panic!("duration {s:?}: unknown unit {u:?}"),
        };
        total += Duration::from_secs_f64(n * secs);
        rest = &rest[unit_len..];
    }
    total
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

struct Stage {
    image: String,
    /// (INSTRUCTION, arguments), continuation lines joined, comments dropped.
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn all(&self, instruction: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn last(&self, instruction: &str) -> Option<&str> {
        self.all(instruction).last().copied()
    }

    /// `ENV` values (both `ENV K=V …` and `ENV K V`).
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.all("ENV") {
            let first = args.split_whitespace().next().unwrap_or("");
            if first.contains('=') {
                for pair in args.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("ENV K=V");
                    env.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            } else if let Some((k, v)) = args.split_once(char::is_whitespace) {
                env.insert(k.to_string(), v.trim().trim_matches('"').to_string());
            }
        }
        env
    }
}

fn dockerfile_stages() -> Vec<Stage> {
    let text = read("docker/Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        logical.push(current);
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (instruction, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let args = args.trim().to_string();
        if instruction == "FROM" {
            let image = args
                .split_whitespace()
                .find(|w| !w.starts_with("--"))
                .expect("FROM image")
                .to_string();
            stages.push(Stage {
                image,
                instructions: vec![],
            });
        } else if instruction != "ARG" || !stages.is_empty() {
            stages
                .last_mut()
                .expect("Dockerfile starts with FROM")
                .instructions
                .push((instruction, args));
        }
    }
    assert!(
        stages.len() >= 2,
        "docker/Dockerfile should be multi-stage (builder + runtime)"
    );
    stages
}

fn runtime_stage() -> Stage {
    dockerfile_stages().pop().unwrap()
}

struct Probe {
    host: String,
    port: u16,
    path: String,
}

/// The `http://host:port/path` URLs in a command.
fn probe_urls(command: &str) -> Vec<Probe> {
    command
        .match_indices("http://")
        .map(|(i, _)| {
            let rest = &command[i + "http://".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ']'))
                .unwrap_or(rest.len());
            let url = &rest[..end];
            let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().expect("probe port")),
                None => (authority, 80),
            };
            Probe {
                host: host.to_string(),
                port,
                path: path.split('?').next().unwrap_or("/").to_string(),
            }
        })
        .collect()
}

/// The probe must target the server itself, on its port, on a route it serves.
fn check_probe(command: &str, container_port: u16, what: &str) {
    let probes = probe_urls(command);
    assert!(
        !probes.is_empty(),
        "{what}: no http:// URL in healthcheck {command:?}"
    );
    for p in probes {
        assert!(
            matches!(p.host.as_str(), "127.0.0.1" | "localhost" | "[::1]"),
            "{what}: healthcheck should probe the container itself, not {}",
            p.host
        );
        assert_eq!(
            p.port, container_port,
            "{what}: healthcheck port differs from the port wakeplane listens on"
        );
        assert!(
            matches!(p.path.as_str(), "/healthz" | "/readyz"),
            "{what}: healthcheck should use /healthz or /readyz, not {}",
            p.path
        );
        assert!(
            served_route(&p.path),
            "{what}: healthcheck path {} is not a route in src/api/mod.rs",
            p.path
        );
    }
}

fn is_loopback(ip: &str) -> bool {
    ip == "localhost"
        || ip
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// wakeplane's effective environment: the image's ENV overlaid with compose's.
fn wakeplane_env(compose: &Value, vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = runtime_stage().env();
    env.extend(environment(service(compose, "wakeplane"), vars));
    env
}

/// The binary's own reading of that environment.
fn wakeplane_config(env: &BTreeMap<String, String>, label: &str) -> Config {
    Config::from_lookup(|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("[{label}] wakeplane would refuse to start: {e}"))
}

fn listen_addr(config: &Config, label: &str) -> SocketAddr {
    config.http_addr.parse().unwrap_or_else(|_| {
        panic!(
            "[{label}] WAKEPLANE_HTTP_ADDR {:?} is not ip:port",
            config.http_addr
        )
    })
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn both_services_are_defined_and_the_build_points_at_the_dockerfile() {
    let compose = compose_raw();
    let postgres = service(&compose, "postgres");
    let wakeplane = service(&compose, "wakeplane");
    let image = postgres.get("image").and_then(Value::as_str).unwrap_or("");
    assert!(
        image.starts_with("postgres:"),
        "postgres should run the official image, not {image:?}"
    );
    let build = wakeplane
        .get("build")
        .expect("wakeplane has a build section");
    let context = build
        .get("context")
        .and_then(Value::as_str)
        .expect("build.context");
    let dockerfile = build
        .get("dockerfile")
        .and_then(Value::as_str)
        .unwrap_or("Dockerfile");
    let context = root().join("docker").join(context);
    assert_eq!(
        context.canonicalize().unwrap(),
        root().canonicalize().unwrap(),
        "the build context must be the repository root (the Dockerfile copies src/, migrations/, Cargo.*)"
    );
    assert_eq!(
        context.join(dockerfile).canonicalize().unwrap(),
        root().join("docker/Dockerfile").canonicalize().unwrap(),
    );
}

#[test]
fn postgres_is_persistent_and_probed_with_its_own_credentials() {
    let raw = compose_raw();
    let named_volumes: BTreeSet<String> = raw
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(scalar).collect())
        .unwrap_or_default();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        let pg = service(&compose, "postgres");
        let env = environment(pg, &vars);

        let volumes: Vec<String> = pg
            .get("volumes")
            .and_then(Value::as_sequence)
            .map(|v| v.iter().filter_map(volume_spec).collect())
            .unwrap_or_default();
        let data = volumes
            .iter()
            .find(|v| v.split(':').nth(1) == Some("/var/lib/postgresql/data"))
            .unwrap_or_else(|| {
                panic!("[{label}] postgres mounts no volume at /var/lib/postgresql/data")
            });
        let source = data.split(':').next().unwrap();
        assert!(
            named_volumes.contains(source),
            "[{label}] postgres data volume {source:?} should be a named volume declared under top-level volumes:"
        );

        for key in ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"] {
            assert!(
                env.get(key).is_some_and(|v| !v.is_empty()),
                "[{label}] postgres needs a non-empty {key}"
            );
        }
        // pg_isready -U user -d db, with the container's own variables expanded.
        let command = healthcheck_command(pg, "postgres");
        let command = interpolate(&command, &mut |k| env.get(k).cloned());
        let words: Vec<&str> = command
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .collect();
        assert!(
            words.contains(&"pg_isready"),
            "[{label}] postgres healthcheck should run pg_isready: {command:?}"
        );
        let flag = |f: &str| {
            words
                .iter()
                .position(|w| *w == f)
                .and_then(|i| words.get(i + 1).copied())
                .unwrap_or_else(|| panic!("[{label}] pg_isready needs {f}: {command:?}"))
        };
        assert_eq!(flag("-U"), env["POSTGRES_USER"], "[{label}] pg_isready -U");
        assert_eq!(flag("-d"), env["POSTGRES_DB"], "[{label}] pg_isready -d");
    }
}

fn volume_spec(v: &Value) -> Option<String> {
    match v {
        Value::Mapping(_) => Some(format!(
            "{}:{}",
            v.get("source").and_then(scalar).unwrap_or_default(),
            v.get("target").and_then(scalar)?
        )),
        other => scalar(other),
    }
}

#[test]
fn wakeplane_waits_for_a_healthy_postgres() {
    let compose = compose_raw();
    let depends = service(&compose, "wakeplane")
        .get("depends_on")
        .expect("wakeplane has no depends_on");
    let condition = depends
        .get("postgres")
        .and_then(|p| p.get("condition"))
        .and_then(Value::as_str);
    assert_eq!(
        condition,
        Some("service_healthy"),
        "wakeplane must depend on postgres with condition service_healthy (the list form only waits for the container to start)"
    );
}

#[test]
fn database_url_reaches_the_postgres_service_with_its_credentials() {
    let raw = compose_raw();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        let pg = environment(service(&compose, "postgres"), &vars);
        let env = wakeplane_env(&compose, &vars);
        let config = wakeplane_config(&env, label);
        let url = config.database_url.unwrap_or_else(|| {
            panic!("[{label}] wakeplane has no DATABASE_URL (it would try a private cluster)")
        });
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("[{label}] DATABASE_URL {url:?} is not postgres://"));
        let (authority, db) = rest
            .split_once('/')
            .unwrap_or_else(|| panic!("[{label}] DATABASE_URL {url:?} names no database"));
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .unwrap_or_else(|| panic!("[{label}] DATABASE_URL {url:?} has no credentials"));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
        let db = db.split('?').next().unwrap();
        assert_eq!(
            host, "postgres",
            "[{label}] DATABASE_URL must point at the postgres service"
        );
        assert_eq!(port, "5432", "[{label}] DATABASE_URL port");
        assert_eq!(
            user, pg["POSTGRES_USER"],
            "[{label}] DATABASE_URL user vs POSTGRES_USER"
        );
        assert_eq!(
            password, pg["POSTGRES_PASSWORD"],
            "[{label}] DATABASE_URL password vs POSTGRES_PASSWORD"
        );
        assert_eq!(
            db, pg["POSTGRES_DB"],
            "[{label}] DATABASE_URL database vs POSTGRES_DB"
        );
    }
}

#[test]
fn the_listener_is_published_on_loopback_only() {
    let raw = compose_raw();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        let env = environment(service(&compose, "wakeplane"), &vars);
        assert_eq!(
            env.get("WAKEPLANE_HTTP_ADDR").map(String::as_str),
            Some("0.0.0.0:8080"),
            "[{label}] compose should set WAKEPLANE_HTTP_ADDR=0.0.0.0:8080 (the default 127.0.0.1 is unreachable through a published port)"
        );
        let config = wakeplane_config(&wakeplane_env(&compose, &vars), label);
        let addr = listen_addr(&config, label);
        assert!(
            addr.ip().is_unspecified(),
            "[{label}] wakeplane must listen on all interfaces inside the container"
        );
        let mapping = ports(service(&compose, "wakeplane"))
            .into_iter()
            .find(|p| p.target == addr.port())
            .unwrap_or_else(|| {
                panic!(
                    "[{label}] no published port targets the container port {}",
                    addr.port()
                )
            });
        assert_eq!(
            mapping,
            PortMapping {
                host_ip: Some("127.0.0.1".into()),
                published: Some(8080),
                target: addr.port(),
            },
            "[{label}] wakeplane should be published as 127.0.0.1:8080"
        );
        // Nothing in the stack listens on the host's other interfaces.
        for (name, svc) in compose.get("services").and_then(Value::as_mapping).unwrap() {
            for p in ports(svc) {
                assert!(
                    p.host_ip.as_deref().is_some_and(is_loopback),
                    "[{label}] service {name:?} publishes {p:?} beyond loopback"
                );
            }
        }
    }
}

#[test]
fn every_variable_mentioned_is_one_the_binary_reads() {
    let known = known_variables();
    for (file, text) in [
        ("docker/compose.yaml", compose_text()),
        ("docker/.env.example", read("docker/.env.example")),
        ("docker/Dockerfile", read("docker/Dockerfile")),
    ] {
        let unknown: Vec<String> = wakeplane_words(&text)
            .into_iter()
            .filter(|w| !known.contains(w))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} mentions {unknown:?}, which src/config.rs does not read (known: {known:?})"
        );
    }
    // Keys of wakeplane's environment, WAKEPLANE_* or not.
    let raw = compose_raw();
    for key in environment(service(&raw, "wakeplane"), &BTreeMap::new()).keys() {
        assert!(
            known.contains(key),
            "compose sets {key} for wakeplane, which the binary does not read"
        );
    }
    for key in runtime_stage().env().keys() {
        assert!(
            known.contains(key),
            "the Dockerfile sets ENV {key}, which the binary does not read"
        );
    }
}

#[test]
fn env_example_documents_exactly_what_compose_reads() {
    let mut used = BTreeSet::new();
    interpolated_variables(&compose_raw(), &mut used);
    let documented: BTreeSet<String> = env_example(true).into_keys().collect();
    let undocumented: Vec<&String> = used.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "compose.yaml reads {undocumented:?}, which docker/.env.example does not document"
    );
    let unused: Vec<&String> = documented.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "docker/.env.example sets {unused:?}, which compose.yaml never reads (setting them would do nothing)"
    );
}

#[test]
fn every_configuration_starts_the_binary() {
    let raw = compose_raw();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        // Panics with the binary's own message if any value is out of range.
        wakeplane_config(&wakeplane_env(&compose, &vars), label);
    }
}

#[test]
fn healthchecks_probe_served_routes_on_the_listening_port() {
    let raw = compose_raw();
    let runtime = runtime_stage();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        let config = wakeplane_config(&wakeplane_env(&compose, &vars), label);
        let port = listen_addr(&config, label).port();
        let command = healthcheck_command(service(&compose, "wakeplane"), "wakeplane");
        check_probe(&command, port, &format!("[{label}] compose wakeplane"));
        assert_probe_tool_installed(&command, &runtime, "compose.yaml's wakeplane healthcheck");
    }
    // The image's own probe, against the image's own ENV.
    let image_config = wakeplane_config(&runtime.env(), "Dockerfile ENV");
    let port = listen_addr(&image_config, "Dockerfile ENV").port();
    let healthcheck = runtime
        .last("HEALTHCHECK")
        .expect("the runtime stage has no HEALTHCHECK");
    assert!(
        !healthcheck.trim().eq_ignore_ascii_case("NONE"),
        "the runtime stage disables HEALTHCHECK"
    );
    check_probe(healthcheck, port, "Dockerfile HEALTHCHECK");
    assert_probe_tool_installed(healthcheck, &runtime, "the Dockerfile HEALTHCHECK");
}

/// A probe run with curl or wget needs that tool in the runtime image.
fn assert_probe_tool_installed(command: &str, runtime: &Stage, what: &str) {
    for tool in ["curl", "wget"] {
        if command
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == tool)
        {
            assert!(
                runtime
                    .all("RUN")
                    .iter()
                    .any(|r| r.contains("apt-get install")
                        && r.split_whitespace().any(|w| w == tool)),
                "{what} uses {tool}, which the runtime stage does not install"
            );
        }
    }
}

#[test]
fn dockerfile_runtime_stage_is_non_root_and_exposes_the_listen_port() {
    let stages = dockerfile_stages();
    let runtime = stages.last().unwrap();
    let user = runtime
        .last("USER")
        .expect("the runtime stage sets no USER (it would run as root)");
    let name = user.split(':').next().unwrap().trim();
    assert!(
        !matches!(name, "root" | "0" | ""),
        "the runtime stage runs as {user:?}"
    );

    let config = wakeplane_config(&runtime.env(), "Dockerfile ENV");
    let addr = listen_addr(&config, "Dockerfile ENV");
    assert!(
        addr.ip().is_unspecified(),
        "the image should set WAKEPLANE_HTTP_ADDR to 0.0.0.0:<port>, not {addr}"
    );
    let exposed: Vec<u16> = runtime
        .all("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(|p| p.split('/').next().unwrap().parse().expect("EXPOSE port"))
        .collect();
    assert!(
        exposed.contains(&addr.port()),
        "the runtime stage EXPOSEs {exposed:?}, not the listen port {}",
        addr.port()
    );
    assert!(
        runtime.last("HEALTHCHECK").is_some(),
        "the runtime stage has no HEALTHCHECK"
    );
    let entrypoint = runtime
        .last("ENTRYPOINT")
        .expect("the runtime stage has no ENTRYPOINT");
    assert!(
        entrypoint.contains("wakeplane"),
        "ENTRYPOINT should run wakeplane: {entrypoint}"
    );
    let cmd = runtime.last("CMD").unwrap_or("");
    assert!(cmd.contains("serve"), "CMD should be serve, not {cmd:?}");

    // The binary links libpq dynamically: builder and runtime must share a Debian release.
    let builder = &stages[0];
    let release = runtime
        .image
        .split(':')
        .nth(1)
        .and_then(|t| t.split('-').next())
        .expect("runtime image tag");
    assert!(
        builder.image.contains(release),
        "builder {} and runtime {} are different Debian releases",
        builder.image,
        runtime.image
    );
}

#[test]
fn dockerfile_builds_with_the_migrations_embedded() {
    let stages = dockerfile_stages();
    let builder = &stages[0];
    let position =
        |pred: &dyn Fn(&(String, String)) -> bool| builder.instructions.iter().rposition(pred);
    let copy_migrations = position(&|(i, a)| i == "COPY" && a.contains("migrations")).expect(
        "the builder stage must COPY migrations/ (embed_migrations! reads it at compile time)",
    );
    let final_build =
        position(&|(i, a)| i == "RUN" && a.contains("cargo build") && a.contains("--release"))
            .expect("the builder stage runs no cargo build --release");
    assert!(
        copy_migrations < final_build,
        "migrations/ must be copied before the final cargo build"
    );
    assert!(
        builder.all("RUN").iter().any(|r| r.contains("--locked")),
        "build with --locked so the image uses Cargo.lock"
    );
}

#[test]
fn stop_grace_period_outlasts_the_shutdown_drain() {
    let raw = compose_raw();
    for (label, vars) in scenarios() {
        let compose = resolve(&raw, &vars);
        let svc = service(&compose, "wakeplane");
        // Docker's default is 10 s.
        let grace = svc
            .get("stop_grace_period")
            .and_then(scalar)
            .map(|s| compose_duration(&s))
            .unwrap_or(Duration::from_secs(10));
        let config = wakeplane_config(&wakeplane_env(&compose, &vars), label);
        assert!(
            grace > config.shutdown_timeout,
            "[{label}] stop_grace_period {grace:?} must exceed WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS ({:?}), or docker kills wakeplane mid-drain",
            config.shutdown_timeout
        );
    }
}

#[test]
fn dockerignore_keeps_build_output_and_secrets_out_of_the_context() {
    let text = read(".dockerignore");
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in ["target", ".wakeplane", ".git", "docker/.env"] {
        assert!(
            patterns.contains(needed),
            ".dockerignore should exclude {needed}"
        );
    }
}

/// Says on the real stderr why `docker_compose_accepts_the_file` checked nothing: the
/// harness captures `println!` and `eprintln!` of a passing test, and a silent pass would
/// read as "docker accepted the file".
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "docker_compose_accepts_the_file: NOT CHECKED: {why}"
    );
}

#[test]
fn docker_compose_accepts_the_file() {
    // `docker compose` (v2) or `docker-compose` (v1), whichever is installed.
    let tool = [&["docker", "compose"][..], &["docker-compose"][..]]
        .into_iter()
        .find(|t| {
            Command::new(t[0])
                .args(&t[1..])
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(tool) = tool else {
        return skipped("neither `docker compose` nor `docker-compose` is installed");
    };
    for publish in [None, Some("")] {
        let mut cmd = Command::new(tool[0]);
        cmd.args(&tool[1..])
            .args(["-f", "docker/compose.yaml", "config", "-q"])
            .current_dir(root());
        if let Some(p) = publish {
            cmd.env("PUBLISH_PORT", p);
        }
        let out = cmd.output().expect("running compose config");
        assert!(
            out.status.success(),
            "{tool:?} config (PUBLISH_PORT={publish:?}) rejected docker/compose.yaml:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------
// The helpers themselves
// ---------------------------------------------------------------------------------------

#[test]
fn interpolation_follows_compose() {
    let vars: BTreeMap<String, String> = [("A", "a"), ("E", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let i = |s: &str| interpolate(s, &mut |k| vars.get(k).cloned());
    assert_eq!(i("${A:-x}/${B:-x}/${E:-x}/${E-x}/${B-x}"), "a/x/x//x");
    assert_eq!(i("$A-$$A-${A:+set}-${E:+set}-${E+set}"), "a-$A-set--set");
    assert_eq!(i("${B:-${A}}"), "a");
    assert_eq!(i("$${POSTGRES_USER}"), "${POSTGRES_USER}");
    assert_eq!(
        short_port("127.0.0.1:8080:9000/tcp"),
        PortMapping {
            host_ip: Some("127.0.0.1".into()),
            published: Some(8080),
            target: 9000
        }
    );
    assert_eq!(short_port("9000").published, None);
    assert_eq!(compose_duration("1m30s"), Duration::from_secs(90));
    assert_eq!(compose_duration("45s"), Duration::from_secs(45));
    assert_eq!(
        wakeplane_words("x WAKEPLANE_A=1 MY_WAKEPLANE_B ${WAKEPLANE_C:-}"),
        ["WAKEPLANE_A", "WAKEPLANE_C"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
