//! Reads the server's own instruments from `/v1/metrics`: one scrape, then the value of any
//! unlabelled sample (retention's progress, the claim profile's report line). Reads only;
//! asserts nothing.

use anyhow::{bail, Result};

use crate::env::Api;

/// One scrape of `/v1/metrics`.
pub struct Scrape(String);

impl Scrape {
    pub async fn of(api: &Api) -> Result<Scrape> {
        let (status, body) = api.get("/v1/metrics").await?;
        match body.as_str() {
            Some(text) if status == 200 => Ok(Scrape(text.to_string())),
            _ => bail!("GET /v1/metrics answered {status}"),
        }
    }

    /// The value of the unlabelled sample `name`, if the scrape has it.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// `(label, text)` for the report: claim transactions, mean runs per claim and mean claim
/// time, over the server's life.
pub async fn claim_profile(api: &Api) -> Result<(String, String)> {
    let scrape = Scrape::of(api).await?;
    let value = |name: &str| scrape.value(name).unwrap_or(0.0);
    let claims = value("executor_claim_batch_runs_count");
    let runs = value("executor_claim_batch_runs_sum");
    let secs = value("executor_claim_duration_seconds_sum");
    let per = |x: f64| if claims > 0.0 { x / claims } else { 0.0 };
    Ok((
        "claims (server's metrics)".into(),
        format!(
            "{claims:.0} claim transactions, {:.1} runs each, {:.2} ms each (waiting for a connection included)",
            per(runs),
            per(secs) * 1000.0
        ),
    ))
}
