//! `--format` for berth's listing and inspect commands: Go template syntax (through gotmpl)
//! with Docker's and Podman's extra functions — json, join, lower, upper, title, split —
//! and Podman's `table` prefix, which prints a header of the fields' names and aligns the
//! columns. `json` alone as the format prints the objects as a JSON array.

use std::io::Write;

use anyhow::{Context, Result};
use gotmpl::{Template, Value};
use serde::Serialize;

/// A parsed `--format`.
pub struct Format {
    template: Template,
    table: bool,
    header: Vec<String>,
}

impl Format {
    /// Parses a user's template; `table` prefixed ones get a header row.
    pub fn parse(source: &str) -> Result<Self> {
        let (table, body) = match source.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, source),
        };
        // Go's templates see `\t` literally in a shell argument; Podman turns it into a tab.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let header = if table { header_of(&body) } else { Vec::new() };
        let template = with_functions(Template::new("format"))
            .parse(&body)
            .with_context(|| format!("parsing the template {source:?}"))?;
        Ok(Self { template, table, header })
    }

    /// Renders `item` through the template.
    pub fn render<T: Serialize>(&self, item: &T) -> Result<String> {
        let value = gotmpl::to_value(item).context("preparing template data")?;
        self.template.execute_to_string(&value).context("executing the template")
    }

    /// Renders every item, one per line, aligned under a header for `table` formats.
    pub fn print_all<T: Serialize>(&self, items: &[T], out: &mut impl Write) -> Result<()> {
        let mut rows = Vec::new();
        if self.table {
            rows.push(self.header.join("\t"));
        }
        for item in items {
            rows.push(self.render(item)?);
        }
        if self.table {
            let cells: Vec<Vec<String>> =
                rows.iter().map(|r| r.split('\t').map(str::to_owned).collect()).collect();
            write_table(&cells, out)?;
        } else {
            for row in rows {
                writeln!(out, "{row}")?;
            }
        }
        Ok(())
    }
}

/// The header names of a table template: each `{{.Field}}` becomes `FIELD`, with Podman's
/// names for the common ones (`{{.ID}}` is `IMAGE ID`).
fn header_of(body: &str) -> Vec<String> {
    body.split('\t')
        .map(|cell| {
            let field = cell
                .split("{{")
                .nth(1)
                .and_then(|s| s.split("}}").next())
                .map(|s| {
                    s.trim()
                        .trim_start_matches('.')
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
                .unwrap_or_default();
            match field.as_str() {
                "ID" | "Id" => "IMAGE ID".to_owned(),
                "CreatedSince" | "CreatedAt" => "CREATED".to_owned(),
                "CreatedBy" => "CREATED BY".to_owned(),
                other => other.to_uppercase(),
            }
        })
        .collect()
}

/// Writes rows with columns padded to their widest cell and separated by spaces, as
/// Go's tabwriter does for Podman's tables.
pub fn write_table(rows: &[Vec<String>], out: &mut impl Write) -> Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn with_functions(template: Template) -> Template {
    template
        .func("json", |args| {
            let value = args.first().map(to_json).unwrap_or(serde_json::Value::Null);
            Ok(Value::String(serde_json::to_string(&value).unwrap_or_default().into()))
        })
        .func("join", |args| {
            let separator = args.get(1).map(text).unwrap_or_default();
            let parts: Vec<String> = match args.first() {
                Some(Value::List(items)) => items.iter().map(text).collect(),
                Some(other) => vec![text(other)],
                None => Vec::new(),
            };
            Ok(Value::String(parts.join(&separator).into()))
        })
        .func("lower", |args| {
            Ok(Value::String(args.first().map(text).unwrap_or_default().to_lowercase().into()))
        })
        .func("upper", |args| {
            Ok(Value::String(args.first().map(text).unwrap_or_default().to_uppercase().into()))
        })
        .func("title", |args| {
            let s = args.first().map(text).unwrap_or_default();
            let titled: Vec<String> = s
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
                })
                .collect();
            Ok(Value::String(titled.join(" ").into()))
        })
        .func("split", |args| {
            let s = args.first().map(text).unwrap_or_default();
            let sep = args.get(1).map(text).unwrap_or_default();
            let parts: Vec<Value> =
                s.split(sep.as_str()).map(|p| Value::String(p.into())).collect();
            Ok(Value::List(parts.into()))
        })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => s.to_string().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item {
        id: String,
        repo_digests: Vec<String>,
        config: serde_json::Value,
    }

    // The templates Podman users script with work as in Go.
    #[test]
    fn go_templates_with_docker_functions() {
        let item = Item {
            id: "abc".into(),
            repo_digests: vec!["r@sha256:1".into(), "s@sha256:2".into()],
            config: serde_json::json!({"Cmd": ["sh"]}),
        };
        let render = |t: &str| Format::parse(t).unwrap().render(&item).unwrap();
        assert_eq!(render("{{.Id}}"), "abc");
        assert_eq!(render("{{index .RepoDigests 0}}"), "r@sha256:1");
        assert_eq!(render("{{json .Config}}"), r#"{"Cmd":["sh"]}"#);
        assert_eq!(render(r#"{{join .RepoDigests ","}}"#), "r@sha256:1,s@sha256:2");
        assert_eq!(render("{{upper .Id}}"), "ABC");
    }

    #[test]
    fn table_formats_get_aligned_headers() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Row {
            repository: String,
            tag: String,
        }
        let rows = [Row { repository: "docker.io/library/busybox".into(), tag: "latest".into() }];
        let mut out = Vec::new();
        Format::parse("table {{.Repository}}\\t{{.Tag}}")
            .unwrap()
            .print_all(&rows, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "REPOSITORY                 TAG\ndocker.io/library/busybox  latest\n"
        );
    }
}
