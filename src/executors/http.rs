//! Executes http targets: one request with the run's identity headers, success iff 2xx,
//! an `http_response` receipt with the status line, content type and the first 64 KiB of
//! the body. Redirects are followed (at most 10 hops); every address connected to is
//! checked against the network policy (see `guard`), a literal one before sending.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

use super::{CappedBuffer, Interrupt, Outcome, OutcomeStatus, ReceiptDraft, RunIdentity};
use crate::security::NetPolicy;

/// The parts of an http target.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a serde_json::Value>,
}

/// Sends the request; stops it (drops the connection) on timeout or cancellation.
pub(crate) async fn execute(
    client: &reqwest::Client,
    net: &NetPolicy,
    request: HttpRequest<'_>,
    identity: &RunIdentity,
    timeout: Duration,
    cancel: CancellationToken,
) -> Outcome {
    if cancel.is_cancelled() {
        return Outcome::cancelled();
    }
    let interrupt = tokio::select! {
        biased;
        _ = cancel.cancelled() => Interrupt::Cancelled,
        _ = tokio::time::sleep(timeout) => Interrupt::TimedOut,
        outcome = send(client, net, request, identity) => return outcome,
    };
    tracing::debug!(run_id = %identity.run_id, url = request.url, ?interrupt, "http request stopped");
    interrupt.outcome(timeout)
}

async fn send(
    client: &reqwest::Client,
    net: &NetPolicy,
    request: HttpRequest<'_>,
    identity: &RunIdentity,
) -> Outcome {
    let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Outcome::failed(format!("invalid http method {:?}", request.method)),
    };
    let url = match reqwest::Url::parse(request.url) {
        Ok(u) => u,
        Err(e) => return Outcome::failed(format!("invalid url {:?}: {e}", request.url)),
    };
    // A literal address is connected to without resolution: the resolver never sees it.
    if let Err(refusal) = net.check_url_literal(&url) {
        tracing::warn!(run_id = %identity.run_id, url = request.url, %refusal, "http target refused");
        return Outcome::failed(format!("http request refused: {refusal} ({})", request.url));
    }
    let headers = match build_headers(request.headers, identity) {
        Ok(h) => h,
        Err(e) => return Outcome::failed(e),
    };
    let mut builder = client.request(method, url).headers(headers.clone());
    if let Some(body) = request.body {
        let bytes = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return Outcome::failed(format!("could not encode the json body: {e}")),
        };
        if !headers.contains_key(CONTENT_TYPE) {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        builder = builder.body(bytes);
    }

    tracing::debug!(run_id = %identity.run_id, method = request.method, url = request.url, "sending http request");
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::failed(format!(
                "http request failed: {} ({})",
                describe_error(&e),
                request.url
            ))
        }
    };

    let status = response.status();
    let status_text = match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason),
        None => status.as_u16().to_string(),
    };
    let status_line = format!("{:?} {}", response.version(), status_text);
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

    // Stream the body: keep the first 64 KiB, count (and discard) the rest.
    let mut captured = CappedBuffer::new();
    let mut body_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => captured.push(&chunk),
            Ok(None) => break,
            Err(e) => {
                body_error = Some(format!(
                    "reading the http response body failed: {} ({})",
                    describe_error(&e),
                    request.url
                ));
                break;
            }
        }
    }
    let (body_text, truncated_bytes) = captured.finish();
    let receipt_body = serde_json::json!({
        "status_line": status_line,
        "content_type": content_type,
        "body": body_text,
        "truncated_bytes": truncated_bytes,
    });
    tracing::debug!(run_id = %identity.run_id, status = %status_text, truncated_bytes, "http response received");

    let success = status.is_success() && body_error.is_none();
    let error_text = if !status.is_success() {
        Some(format!("http status {status_text}"))
    } else {
        body_error
    };
    Outcome {
        status: if success {
            OutcomeStatus::Succeeded
        } else {
            OutcomeStatus::Failed
        },
        http_status_code: Some(i32::from(status.as_u16())),
        exit_code: None,
        result_json: None,
        error_text,
        receipts: vec![ReceiptDraft {
            kind: "http_response",
            content_type: "application/json".to_string(),
            body: receipt_body.to_string(),
        }],
    }
}

/// Identity headers first, then the target's own headers, which replace identity headers
/// of the same name (header names are case-insensitive).
fn build_headers(
    target_headers: &BTreeMap<String, String>,
    identity: &RunIdentity,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    let attempt = identity.attempt.to_string();
    let identity_headers: [(&'static str, &str); 5] = [
        ("wakeplane-schedule-id", &identity.schedule_id),
        ("wakeplane-run-id", &identity.run_id),
        ("wakeplane-occurrence-key", &identity.occurrence_key),
        ("wakeplane-attempt", &attempt),
        ("idempotency-key", &identity.occurrence_key),
    ];
    for (name, value) in identity_headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("identity header {name} has an invalid value {value:?}"))?;
        map.insert(HeaderName::from_static(name), value);
    }
    for (name, value) in target_headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid http header name {name:?}"))?;
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for http header {name:?}"))?;
        map.insert(header_name, header_value);
    }
    Ok(map)
}

/// A short description of a request error: its category and root cause, without the URL
/// (reqwest's own text repeats it).
fn describe_error(e: &reqwest::Error) -> String {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let cause = lowercase_first(&cause);
    let category = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_redirect() {
        "redirect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    format!("{category}: {cause}")
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if first.is_ascii_uppercase() => {
            let mut out = String::with_capacity(s.len());
            out.push(first.to_ascii_lowercase());
            out.push_str(chars.as_str());
            out
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::domain::schedule::Target;
    use crate::executors::test_support::identity;
    use crate::executors::{Executors, WorkflowRegistry, RECEIPT_BODY_LIMIT};

    /// A request as the server saw it: lower-cased header names in order, and the body.
    #[derive(Debug)]
    struct SeenRequest {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl SeenRequest {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    fn read_request(stream: &mut TcpStream) -> Option<SeenRequest> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => buf.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next()?.to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).ok()?;
        Some(SeenRequest {
            request_line,
            headers,
            body,
        })
    }

    /// A real HTTP/1.1 server on 127.0.0.1 that answers each connection with the next
    /// canned response and reports what it received.
    fn serve(responses: Vec<Vec<u8>>) -> (String, mpsc::Receiver<SeenRequest>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for response in responses {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                if let Some(seen) = read_request(&mut stream) {
                    let _ = tx.send(seen);
                }
                let _ = stream.write_all(&response);
                let _ = stream.flush();
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn response(status_line: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn http_target(
        method: &str,
        url: String,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Target {
        Target::Http {
            method: method.to_string(),
            url,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    }

    async fn run(target: &Target, timeout: Duration, cancel: CancellationToken) -> Outcome {
        Executors::new(
            WorkflowRegistry::new(),
            crate::security::TargetPolicy::unrestricted(),
        )
        .execute(target, &identity(), timeout, cancel)
        .await
    }

    fn receipt_json(outcome: &Outcome) -> serde_json::Value {
        assert_eq!(outcome.receipts.len(), 1, "{outcome:?}");
        let r = &outcome.receipts[0];
        assert_eq!(r.kind, "http_response");
        assert_eq!(r.content_type, "application/json");
        serde_json::from_str(&r.body).unwrap()
    }

    #[tokio::test]
    async fn success_sends_identity_headers_and_json_body() {
        let (base, seen) = serve(vec![response(
            "200 OK",
            "application/json",
            b"{\"ok\":true}",
        )]);
        let target = http_target(
            "POST",
            format!("{base}/hook?x=1"),
            &[("X-Custom", "yes")],
            Some(serde_json::json!({"hello": "world"})),
        );
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.http_status_code, Some(200));
        assert_eq!(outcome.error_text, None);
        let receipt = receipt_json(&outcome);
        assert_eq!(receipt["status_line"], "HTTP/1.1 200 OK");
        assert_eq!(receipt["content_type"], "application/json");
        assert_eq!(receipt["body"], "{\"ok\":true}");
        assert_eq!(receipt["truncated_bytes"], 0);

        let req = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(req.request_line, "POST /hook?x=1 HTTP/1.1");
        let id = identity();
        assert_eq!(
            req.header_values("wakeplane-schedule-id"),
            vec![id.schedule_id.as_str()]
        );
        assert_eq!(
            req.header_values("wakeplane-run-id"),
            vec![id.run_id.as_str()]
        );
        assert_eq!(
            req.header_values("wakeplane-occurrence-key"),
            vec![id.occurrence_key.as_str()]
        );
        assert_eq!(req.header_values("wakeplane-attempt"), vec!["2"]);
        assert_eq!(
            req.header_values("idempotency-key"),
            vec![id.occurrence_key.as_str()]
        );
        assert_eq!(req.header_values("x-custom"), vec!["yes"]);
        assert_eq!(req.header_values("content-type"), vec!["application/json"]);
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, serde_json::json!({"hello": "world"}));
    }

    #[tokio::test]
    async fn target_headers_override_identity_headers_case_insensitively() {
        let (base, seen) = serve(vec![response("204 No Content", "text/plain", b"")]);
        let target = http_target(
            "GET",
            format!("{base}/"),
            &[("idempotency-KEY", "mine"), ("Wakeplane-Attempt", "99")],
            None,
        );
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.http_status_code, Some(204));
        let req = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(req.header_values("idempotency-key"), vec!["mine"]);
        assert_eq!(req.header_values("wakeplane-attempt"), vec!["99"]);
        assert_eq!(req.header_values("wakeplane-run-id"), vec!["run_01"]);
        assert!(req.header_values("content-type").is_empty());
        assert!(req.body.is_empty());
    }

    #[tokio::test]
    async fn non_2xx_fails_with_status_and_receipt() {
        let (base, _seen) = serve(vec![response(
            "503 Service Unavailable",
            "text/plain",
            b"try later",
        )]);
        let target = http_target("GET", format!("{base}/x"), &[], None);
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.http_status_code, Some(503));
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("http status 503 Service Unavailable")
        );
        let receipt = receipt_json(&outcome);
        assert_eq!(receipt["status_line"], "HTTP/1.1 503 Service Unavailable");
        assert_eq!(receipt["body"], "try later");
    }

    #[tokio::test]
    async fn server_error_500_fails() {
        let (base, _seen) = serve(vec![response(
            "500 Internal Server Error",
            "text/plain",
            b"boom",
        )]);
        let target = http_target("PUT", format!("{base}/x"), &[], Some(serde_json::json!(1)));
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.http_status_code, Some(500));
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("http status 500 Internal Server Error")
        );
    }

    #[tokio::test]
    async fn connection_refused_fails_with_clear_error() {
        // Bind then drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/x");
        let target = http_target("GET", url.clone(), &[], None);
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.http_status_code, None);
        assert!(outcome.receipts.is_empty());
        let err = outcome.error_text.unwrap();
        assert!(
            err.starts_with("http request failed: connect error: "),
            "{err}"
        );
        assert!(err.to_lowercase().contains("connection refused"), "{err}");
        assert!(err.ends_with(&format!("({url})")), "{err}");
    }

    #[tokio::test]
    async fn server_that_never_answers_times_out() {
        // Listening but never accepting: the kernel completes the handshake, nobody answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let target = http_target("GET", url, &[], None);
        let started = Instant::now();
        let outcome = run(
            &target,
            Duration::from_millis(500),
            CancellationToken::new(),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(outcome.status, OutcomeStatus::TimedOut);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("timed out after 0.5 seconds")
        );
        assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn cancellation_aborts_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let target = http_target("GET", url, &[], None);
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let outcome = run(&target, Duration::from_secs(30), cancel).await;
        assert_eq!(outcome.status, OutcomeStatus::Cancelled);
        assert_eq!(outcome.error_text.as_deref(), Some("cancelled"));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }

    #[tokio::test]
    async fn body_is_truncated_at_64_kib() {
        let mut body = vec![b'x'; RECEIPT_BODY_LIMIT];
        body.extend_from_slice(&[b'y'; 1000]);
        let (base, _seen) = serve(vec![response("200 OK", "text/plain", &body)]);
        let target = http_target("GET", format!("{base}/big"), &[], None);
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        let receipt = receipt_json(&outcome);
        assert_eq!(receipt["truncated_bytes"], 1000);
        let kept = receipt["body"].as_str().unwrap();
        assert_eq!(kept.len(), RECEIPT_BODY_LIMIT);
        assert!(kept.bytes().all(|b| b == b'x'));
    }

    #[tokio::test]
    async fn missing_content_type_is_null() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec();
        let (base, _seen) = serve(vec![raw]);
        let target = http_target("GET", format!("{base}/"), &[], None);
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        let receipt = receipt_json(&outcome);
        assert_eq!(receipt["content_type"], serde_json::Value::Null);
        assert_eq!(receipt["body"], "ok");
    }

    async fn run_denying(target: &Target, deny: &str) -> Outcome {
        let policy = crate::security::TargetPolicy {
            net: NetPolicy::from_settings(Some(deny), None).unwrap(),
            ..crate::security::TargetPolicy::unrestricted()
        };
        crate::executors::test_support::execute_under(policy, target).await
    }

    #[tokio::test]
    async fn a_denied_literal_address_is_never_contacted() {
        let (base, seen) = serve(vec![response("200 OK", "text/plain", b"secret")]);
        let target = http_target("GET", format!("{base}/latest/meta-data/"), &[], None);
        let outcome = run_denying(&target, "127.0.0.0/8").await;
        assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
        assert_eq!(
            outcome.error_text.as_deref(),
            Some(format!("http request refused: address 127.0.0.1 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 127.0.0.0/8 ({base}/latest/meta-data/)").as_str())
        );
        assert!(outcome.receipts.is_empty());
        assert!(seen.try_recv().is_err(), "the denied address was contacted");
    }

    #[tokio::test]
    async fn a_name_resolving_to_denied_addresses_is_refused_at_connect() {
        let (base, seen) = serve(vec![response("200 OK", "text/plain", b"secret")]);
        let port = base.rsplit(':').next().unwrap();
        let target = http_target("GET", format!("http://localhost:{port}/"), &[], None);
        let outcome = run_denying(&target, "127.0.0.0/8,::1").await;
        assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
        let err = outcome.error_text.unwrap_or_default();
        assert!(
            err.starts_with("http request failed: connect error: localhost resolves only to refused addresses: "),
            "{err}"
        );
        assert!(
            err.contains(
                "address 127.0.0.1 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 127.0.0.0/8"
            ),
            "{err}"
        );
        assert!(seen.try_recv().is_err(), "the denied address was contacted");
        // The same name under the default rules connects (to its allowed addresses).
        let (base, seen) = serve(vec![response("200 OK", "text/plain", b"fine")]);
        let port = base.rsplit(':').next().unwrap();
        let target = http_target("GET", format!("http://localhost:{port}/"), &[], None);
        let policy = crate::security::TargetPolicy {
            net: NetPolicy::default(),
            ..crate::security::TargetPolicy::unrestricted()
        };
        let outcome = crate::executors::test_support::execute_under(policy, &target).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert!(seen.try_recv().is_ok());
    }

    #[tokio::test]
    async fn every_redirect_hop_is_checked() {
        let denied = TcpListener::bind("127.0.0.2:0").unwrap();
        let denied_addr = denied.local_addr().unwrap();
        denied.set_nonblocking(true).unwrap();
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{denied_addr}/secret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (base, seen) = serve(vec![redirect.into_bytes()]);
        let target = http_target("GET", format!("{base}/start"), &[], None);
        let outcome = run_denying(&target, "127.0.0.2/32").await;
        assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
        let err = outcome.error_text.unwrap_or_default();
        assert!(
            err.starts_with("http request failed: redirect error: address 127.0.0.2 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 127.0.0.2/32"),
            "{err}"
        );
        assert!(seen.try_recv().is_ok(), "the first hop is allowed");
        assert!(denied.accept().is_err(), "the denied hop was contacted");
    }

    #[test]
    fn invalid_target_header_is_reported() {
        let mut headers = BTreeMap::new();
        headers.insert("bad header".to_string(), "v".to_string());
        let err = build_headers(&headers, &identity()).unwrap_err();
        assert_eq!(err, "invalid http header name \"bad header\"");
    }
}
