//! Reading what an operator's Prometheus reads: a plain HTTP `GET` of an
//! admin port, and its OpenMetrics text parsed into samples.

use std::{collections::BTreeMap, fmt::Display};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::ToSocketAddrs,
};

/// The head and body of `GET path` on `addr`, over a fresh connection
/// (HTTP/1.0, so the body is never chunked).
pub async fn get(addr: impl ToSocketAddrs + Display, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the port answers");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    (head.to_owned(), body.to_owned())
}

/// `GET /metrics` on an admin port, which must answer 200 with whole text.
pub async fn scrape(addr: impl ToSocketAddrs + Display) -> Scrape {
    let (head, body) = get(addr, "/metrics").await;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    Scrape::parse(&body)
}

/// One scrape: each sample's value by its name and its labels.
#[derive(Debug, Default)]
pub struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    /// Parses OpenMetrics text: `name{k="v",...} value` lines (label values
    /// here never hold quotes or commas).
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("key=value");
                            (key.to_owned(), value.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            samples.insert((name.to_owned(), labels), value.parse().expect("a number"));
        }
        Self(samples)
    }

    /// The sample `name{labels}` (exactly these labels), 0 if it is absent
    /// (a family shows a label set once it has been used).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.get(&(name.to_owned(), labels)).copied().unwrap_or(0.0)
    }

    /// The sum of the samples `name` whose labels include every one of
    /// `labels` (0 when none does).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples()
            .filter(|(sample, sample_labels, _)| {
                *sample == name
                    && labels
                        .iter()
                        .all(|(key, value)| sample_labels.get(*key).is_some_and(|v| v == value))
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    /// Every sample: its name, its labels and its value.
    pub fn samples(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, String>, f64)> {
        self.0
            .iter()
            .map(|((name, labels), value)| (name.as_str(), labels, *value))
    }

    /// The names of the samples, one per label set.
    pub fn families(&self) -> Vec<&str> {
        self.0.keys().map(|(name, _)| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x counter\nx_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"1\",b=\"3\"} 4\nx_total{a=\"2\"} 5\ny 9\n# EOF\n";

    #[test]
    fn value_is_one_exact_sample_and_sum_adds_the_matching_ones() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(scrape.value("x_total", &[("a", "1"), ("b", "3")]), 4.0);
        assert_eq!(scrape.value("x_total", &[("a", "1")]), 0.0);
        assert_eq!(scrape.sum("x_total", &[("a", "1")]), 7.0);
        assert_eq!(scrape.sum("x_total", &[]), 12.0);
        assert_eq!(scrape.value("y", &[]), 9.0);
        assert_eq!(scrape.sum("z", &[]), 0.0);
    }
}
