//! A small, strict parser of the OpenMetrics text format (what Prometheus
//! scrapes from `/metrics`), for tests of what a server exposes: every line
//! is checked against the format, and every sample against the family it
//! belongs to, so that a malformed exposition fails the test with its line.
//!
//! ```
//! let text = "# TYPE hits counter\n# HELP hits Hits.\nhits_total{page=\"/a\"} 3\n# EOF\n";
//! let metrics = switchyard_tests::openmetrics::parse(text).unwrap();
//! assert_eq!(metrics.value("hits_total", &[("page", "/a")]), Some(3.0));
//! ```

use std::collections::BTreeMap;

/// A parsed exposition: its metric families, in order.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// The families, as declared.
    pub families: Vec<Family>,
}

/// One metric family: its metadata and samples.
#[derive(Debug, Clone)]
pub struct Family {
    /// The family's name (`http_server_request_duration_seconds`).
    pub name: String,
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// Its `# HELP` text, unescaped.
    pub help: Option<String>,
    /// Its `# UNIT`.
    pub unit: Option<String>,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name: the family's, with a suffix its type allows
    /// (`_total`, `_bucket`, ...).
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Exposition {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|family| family.name == name)
    }

    /// Every sample called `name`, whatever its family.
    pub fn samples<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Sample> + use<'a> {
        let name = name.to_string();
        (self.families.iter().flat_map(|family| &family.samples))
            .filter(move |sample| sample.name == name)
    }

    /// The value of the sample called `name` with exactly the labels
    /// `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|&(name, value)| (name.to_string(), value.to_string()))
            .collect();
        self.samples(name)
            .find(|sample| sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// Every label value of every sample.
    pub fn label_values(&self) -> impl Iterator<Item = &str> {
        (self.families.iter().flat_map(|family| &family.samples))
            .flat_map(|sample| sample.labels.values().map(String::as_str))
    }
}

/// Parse `text`, which must be a whole exposition (ending in `# EOF`); the
/// error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let Some(body) = text.strip_suffix("# EOF\n").or(text.strip_suffix("# EOF")) else {
        return Err("the exposition does not end with `# EOF`".into());
    };
    let mut exposition = Exposition::default();
    for (number, line) in body.lines().enumerate() {
        let at = |error: String| format!("line {}: {error}: {line:?}", number + 1);
        parse_line(&mut exposition, line).map_err(at)?;
    }
    for family in &exposition.families {
        check_family(family).map_err(|error| format!("family `{}`: {error}", family.name))?;
    }
    Ok(exposition)
}

fn parse_line(exposition: &mut Exposition, line: &str) -> Result<(), String> {
    if line.is_empty() {
        return Err("an empty line".into());
    }
    if let Some(comment) = line.strip_prefix("# ") {
        return parse_metadata(exposition, comment);
    }
    if line.starts_with('#') {
        return Err("a comment that is not `# TYPE`, `# HELP` or `# UNIT`".into());
    }
    let sample = parse_sample(line)?;
    let Some(family) = exposition
        .families
        .last_mut()
        .filter(|f| !f.kind.is_empty())
    else {
        return Err("a sample without a `# TYPE` before it".into());
    };
    if !allowed_suffixes(&family.kind)
        .iter()
        .any(|suffix| sample.name == format!("{}{suffix}", family.name))
    {
        return Err(format!(
            "sample `{}` does not belong to the {} `{}` above it",
            sample.name, family.kind, family.name
        ));
    }
    family.samples.push(sample);
    Ok(())
}

/// `TYPE name kind`, `HELP name text` or `UNIT name unit`: in any order,
/// together before the family's samples.
fn parse_metadata(exposition: &mut Exposition, comment: &str) -> Result<(), String> {
    let mut words = comment.splitn(3, ' ');
    let (keyword, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let rest = words.next();
    check_name(name, true)?;
    let family = match exposition.families.last_mut() {
        Some(family) if family.name == name && family.samples.is_empty() => family,
        _ => {
            if exposition.family(name).is_some() {
                return Err(format!("family `{name}` is declared in two places"));
            }
            exposition.families.push(Family {
                name: name.to_string(),
                kind: String::new(),
                help: None,
                unit: None,
                samples: Vec::new(),
            });
            exposition.families.last_mut().unwrap()
        }
    };
    match keyword {
        "TYPE" if family.kind.is_empty() => {
            const KINDS: [&str; 8] = [
                "counter",
                "gauge",
                "histogram",
                "gaugehistogram",
                "stateset",
                "info",
                "summary",
                "unknown",
            ];
            let kind = rest.ok_or("a `# TYPE` without a type")?;
            if !KINDS.contains(&kind) {
                return Err(format!("unknown type `{kind}`"));
            }
            family.kind = kind.to_string();
        }
        "HELP" if family.help.is_none() => {
            family.help = Some(unescape(rest.unwrap_or(""))?);
        }
        "UNIT" if family.unit.is_none() => {
            let unit = rest.unwrap_or("");
            if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                return Err(format!(
                    "family `{name}` does not end with its unit `{unit}`"
                ));
            }
            family.unit = Some(unit.to_string());
        }
        "TYPE" | "HELP" | "UNIT" => return Err(format!("a second `# {keyword}`")),
        _ => return Err(format!("unknown metadata `# {keyword}`")),
    }
    Ok(())
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name, true)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_number(fields.next().unwrap_or(""))?;
    if let Some(timestamp) = fields.next() {
        parse_number(timestamp)?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected `{extra}` after the value (an exemplar?)"
        ));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels after `{`, and what follows their `}`.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = text.split_once("=\"").ok_or("a label without `=\"`")?;
        check_name(name, false)?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("a bad escape in label `{name}`")),
                },
                Some((_, '\n')) => return Err(format!("a raw newline in label `{name}`")),
                Some((_, c)) => value.push(c),
                None => return Err(format!("label `{name}` is not closed")),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        text = &after[end + 1..];
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("labels not separated by `,`".into());
        }
    }
}

/// A metric (`colons` allowed) or label name.
fn check_name(name: &str, colons: bool) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'));
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid name"))
    }
}

/// A value or timestamp: a decimal or `+Inf`, `-Inf`, `NaN`.
fn parse_number(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse()
                .map_err(|_| format!("`{text}` is not a number"))
        }
        _ => Err(format!("`{text}` is not a number")),
    }
}

/// Undo the escapes of a `# HELP` text: `\\`, `\"` and `\n`.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            _ => return Err("a bad escape".into()),
        }
    }
    Ok(out)
}

/// The suffixes a sample of a family of `kind` may add to its name.
fn allowed_suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" | "gaugehistogram" => {
            &["_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"]
        }
        "summary" => &["", "_count", "_sum", "_created"],
        "info" => &["_info"],
        _ => &[""],
    }
}

/// What each type promises: counters are not negative, and each histogram
/// series has cumulative buckets up to `+Inf`, as many as its `_count`.
fn check_family(family: &Family) -> Result<(), String> {
    let name = &family.name;
    match family.kind.as_str() {
        "" => return Err("no `# TYPE`".into()),
        "counter" => {
            if let Some(sample) = family
                .samples
                .iter()
                .find(|s| s.value < 0.0 || s.value.is_nan())
            {
                return Err(format!("a counter below zero: {sample:?}"));
            }
        }
        "histogram" => {
            // The series: the labels of each `_count`.
            for count in family
                .samples
                .iter()
                .filter(|s| s.name == format!("{name}_count"))
            {
                let buckets: Vec<(f64, f64)> = family
                    .samples
                    .iter()
                    .filter(|s| s.name == format!("{name}_bucket"))
                    .filter_map(|s| {
                        let mut labels = s.labels.clone();
                        let le = labels.remove("le")?;
                        (labels == count.labels).then(|| (parse_number(&le), s.value))
                    })
                    .map(|(le, value)| le.map(|le| (le, value)))
                    .collect::<Result<_, _>>()?;
                let series = &count.labels;
                if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
                    return Err(format!(
                        "series {series:?} has no `le=\"+Inf\"` bucket last"
                    ));
                }
                if buckets
                    .windows(2)
                    .any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1)
                {
                    return Err(format!(
                        "series {series:?} has buckets that are not cumulative: {buckets:?}"
                    ));
                }
                if buckets.last().map(|b| b.1) != Some(count.value) {
                    return Err(format!(
                        "series {series:?}: its `+Inf` bucket is not its count"
                    ));
                }
                let has_sum = family
                    .samples
                    .iter()
                    .any(|s| s.name == format!("{name}_sum") && &s.labels == series);
                if !has_sum {
                    return Err(format!("series {series:?} has no `_sum`"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_well_formed_exposition_parses() {
        let text = "# HELP req_seconds How long.\n# TYPE req_seconds histogram\n# UNIT req_seconds seconds\n\
                    req_seconds_sum{route=\"/a\"} 0.5\nreq_seconds_count{route=\"/a\"} 2\n\
                    req_seconds_bucket{le=\"0.1\",route=\"/a\"} 1\nreq_seconds_bucket{le=\"+Inf\",route=\"/a\"} 2\n\
                    # TYPE open gauge\nopen 3\n# TYPE odd counter\nodd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n# EOF\n";
        let metrics = parse(text).unwrap();
        assert_eq!(
            metrics.value("req_seconds_count", &[("route", "/a")]),
            Some(2.0)
        );
        assert_eq!(metrics.value("open", &[]), Some(3.0));
        assert_eq!(
            metrics.value("odd_total", &[("v", "a\"b\\c\nd")]),
            Some(1.0)
        );
        assert_eq!(
            metrics.family("req_seconds").unwrap().unit.as_deref(),
            Some("seconds")
        );
    }

    #[test]
    fn malformed_expositions_are_refused() {
        for bad in [
            "# TYPE a counter\na_total 1\n", // no # EOF
            "a 1\n# EOF\n",                  // no # TYPE
            "# HELP a A.\na 1\n# EOF\n",     // no # TYPE either
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# HELP a A.\n# EOF\n", // a split up
            "# TYPE a counter\na 1\n# EOF\n", // a counter's sample is _total
            "# TYPE a gauge\na{x=\"1} 1\n# EOF\n", // unclosed label
            "# TYPE a gauge\na{x=\"1\"}1\n# EOF\n", // no space
            "# TYPE a gauge\na one\n# EOF\n", // not a number
            "# TYPE a gauge\n\na 1\n# EOF\n", // empty line
            "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\n# EOF\n", // unit not in the name
            "# TYPE h histogram\nh_count 2\nh_sum 1\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\n# EOF\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
