//! Reading a `/metrics` answer with a real Prometheus parser: the Prometheus
//! project's Python client (`prometheus_client.openmetrics.parser`, strict:
//! it rejects what Prometheus would), run from the interpreter named by
//! `PROMETHEUS_PARSER_PYTHON`, which `./test-metrics.sh` sets up.

use std::io::Write;
use std::process::{Command, Stdio};

/// Prints each sample as `name<TAB>labels<TAB>value`, labels as sorted
/// `key=value` pairs joined by commas.
const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value!r}")
"#;

/// The samples of one scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    samples: Vec<(String, String, f64)>,
}

impl Scrape {
    /// The value of sample `name` with exactly `labels`, if present.
    #[must_use]
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        wanted.sort();
        let wanted = wanted.join(",");
        self.samples.iter().find(|(n, l, _)| n == name && *l == wanted).map(|(_, _, v)| *v)
    }

    /// The value of sample `name` with exactly `labels`.
    ///
    /// # Panics
    /// There is no such sample.
    #[must_use]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{self}"))
    }
}

impl std::fmt::Display for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, labels, value) in &self.samples {
            writeln!(f, "{name}{{{labels}}} {value}")?;
        }
        Ok(())
    }
}

/// `GET url` (a `/metrics`), checks the OpenMetrics media type and parses the
/// body with Prometheus's parser.
///
/// # Panics
/// No answer, not 200, another media type, `PROMETHEUS_PARSER_PYTHON` unset,
/// or the parser rejects the text.
pub async fn scrape(url: &str) -> Scrape {
    parse(&fetch(url).await)
}

/// What Prometheus 2.42 sends as `Accept` when it scrapes.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `GET url` (a `/metrics`) as Prometheus asks for it: the text, once checked
/// for the OpenMetrics media type, for [`parse`].
///
/// # Panics
/// No answer, not 200, or another media type.
pub async fn fetch(url: &str) -> String {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", PROMETHEUS_ACCEPT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "GET {url}");
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(media.starts_with("application/openmetrics-text; version=1.0.0"), "GET {url}: content-type {media}");
    response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Parses `text` with Prometheus's parser.
///
/// # Panics
/// As [`scrape`].
#[must_use]
pub fn parse(text: &str) -> Scrape {
    let python = std::env::var("PROMETHEUS_PARSER_PYTHON")
        .unwrap_or_else(|_| panic!("PROMETHEUS_PARSER_PYTHON is not set: run these tests with ./test-metrics.sh"));
    let out = run_with_input(&python, &["-c", PARSE], text, "");
    assert!(
        out.status.success(),
        "Prometheus's parser rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let (name, labels, value) = (fields.next(), fields.next(), fields.next());
            let value = value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("parser output {line:?}"));
            (name.unwrap_or_default().to_owned(), labels.unwrap_or_default().to_owned(), value)
        })
        .collect();
    Scrape { samples }
}

/// `GET url` (a `/metrics`) as a plain client asks (no `Accept`), and the
/// answer linted by `promtool check metrics` (Debian's `prometheus`), which
/// reads the classic text format; `PROMTOOL` may name it.
///
/// # Panics
/// No answer, not the classic media type, promtool missing, or any finding.
pub async fn promtool_check(url: &str) {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(media.starts_with("text/plain; version=0.0.4"), "GET {url} without Accept: content-type {media}");
    let text = response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = run_with_input(&promtool, &["check", "metrics"], &text, " (apt-get install prometheus)");
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && findings.trim().is_empty(), "promtool check metrics on {url}:\n{findings}\n{text}");
}

/// Runs `program` with `args`, `input` on its stdin: its output. `hint`
/// follows the message when it cannot be run.
fn run_with_input(program: &str, args: &[&str], input: &str, hint: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}{hint}: {e}"));
    child.stdin.take().expect("piped").write_all(input.as_bytes()).expect("it reads its input");
    child.wait_with_output().unwrap_or_else(|e| panic!("{program} runs: {e}"))
}
