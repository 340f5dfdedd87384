//! [`Exposition`]: a strict reader of the Prometheus text exposition format (version 0.0.4),
//! for tests and benchmarks that check what `/metrics` serves and read values from it.
//!
//! Checks every line: `# HELP`/`# TYPE` comments (known types, at most one TYPE per metric,
//! before its samples), sample names, quoted and escaped label values, and numeric values
//! (`+Inf`, `-Inf`, `NaN` included). What it is **not**: a scraper or a query engine.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (for a histogram: `…_bucket`, `…_sum`, `…_count`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Declared type per metric family.
    pub types: HashMap<String, String>,
}

/// What is wrong with an exposition: the line (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ExpositionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The line.
    pub text: String,
}

const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

impl Exposition {
    /// Parses `text`, failing at the first malformed line.
    pub fn parse(text: &str) -> Result<Self, ExpositionError> {
        let mut out = Exposition::default();
        let mut seen_samples: std::collections::HashSet<String> = Default::default();
        for (i, line) in text.lines().enumerate() {
            let err = |reason: &str| ExpositionError {
                line: i + 1,
                reason: reason.to_string(),
                text: line.to_string(),
            };
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(comment) = trimmed.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match parts.next() {
                    Some("TYPE") => {
                        let name = parts.next().ok_or_else(|| err("TYPE without a name"))?;
                        let ty = parts.next().ok_or_else(|| err("TYPE without a type"))?;
                        if !valid_name(name) {
                            return Err(err("bad metric name"));
                        }
                        if !TYPES.contains(&ty.trim()) {
                            return Err(err("unknown metric type"));
                        }
                        if seen_samples.contains(name) {
                            return Err(err("TYPE after the metric's samples"));
                        }
                        if out.types.insert(name.into(), ty.trim().into()).is_some() {
                            return Err(err("a second TYPE for the metric"));
                        }
                    }
                    Some("HELP") => {
                        let name = parts.next().ok_or_else(|| err("HELP without a name"))?;
                        if !valid_name(name) {
                            return Err(err("bad metric name"));
                        }
                    }
                    _ => {} // other comments are allowed
                }
                continue;
            }
            let sample = parse_sample(trimmed).map_err(|r| err(&r))?;
            seen_samples.insert(family(&sample.name).to_string());
            seen_samples.insert(sample.name.clone());
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// The sum of the values of samples named `name` whose labels include every `(k, v)` of
    /// `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Samples named `name` whose labels include every `(k, v)` of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// The family a histogram or summary sample belongs to.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("bad sample name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("a sample without a value")?;
    let value = parse_value(value).ok_or("the value is not a number")?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| "the timestamp is not an integer")?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",…}` and returns what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without '='")?;
        let key = s[..eq].trim();
        if !valid_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("a label value without quotes".into());
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => value.push('\n'),
                (true, '\\') => value.push('\\'),
                (true, '"') => value.push('"'),
                (true, _) => return Err("a bad escape in a label value".into()),
                (false, '\\') => {
                    escaped = true;
                    continue;
                }
                (false, '"') => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                (false, c) => value.push(c),
            }
            escaped = false;
        }
        let end = end.ok_or("an unterminated label value")?;
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key:?} twice"));
        }
        s = s[end..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by ','".into());
        }
    }
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_gauges_and_histograms() {
        let text = "# HELP a_total things\n# TYPE a_total counter\n\
                    a_total{route=\"/v1/blobs/{hash}\",status=\"200\"} 3\n\
                    a_total{route=\"/x\",status=\"404\"} 1 1700000000000\n\
                    # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                    h_sum 0.7\nh_count 2\ng{peer=\"a\\\"b\"} -1.5e-3\n";
        let e = Exposition::parse(text).expect("parses");
        assert_eq!(e.sum("a_total", &[]), 4.0);
        assert_eq!(e.sum("a_total", &[("route", "/v1/blobs/{hash}")]), 3.0);
        assert_eq!(e.sum("h_bucket", &[("le", "+Inf")]), 2.0);
        assert_eq!(e.types["h"], "histogram");
        assert_eq!(
            e.samples.last().map(|s| s.labels["peer"].as_str()),
            Some("a\"b")
        );
    }

    #[test]
    fn refuses_malformed_lines() {
        for bad in [
            "1abc 3",
            "a{b=c} 1",
            "a{b=\"c} 1",
            "a x",
            "a",
            "# TYPE a countr",
            "a 1\n# TYPE a counter",
            "a{b=\"1\",b=\"2\"} 1",
            "a 1 2 3",
        ] {
            assert!(Exposition::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
