//! Error codes (issue 15): every `code` the server can return is in the `Problem` schema's
//! enum, and README's "Error codes" section lists exactly `core::error::Code::ALL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use shared::core::error::Code;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn enum_codes() -> BTreeSet<String> {
    let doc = serde_json::to_value(shared::web::openapi::document()).unwrap();
    doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .expect("Problem.code is an enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir` whose name ends with one of `suffixes`.
fn files(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            if !["target", "node_modules", ".git"].contains(&name.as_str()) {
                files(&path, suffixes, out);
            }
        } else if suffixes.iter().any(|s| name.ends_with(s)) {
            out.push(path);
        }
    }
}

/// Code literals written into problem bodies outside the enum: `"code":"x"`, `"code": "x"`,
/// `urn:arca:problem:x`.
fn literal_codes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let word = |s: &str| s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>();
    for (i, _) in text.match_indices("\"code\"") {
        let rest = text[i + 6..].trim_start();
        if let Some(rest) = rest.strip_prefix(':') {
            let rest = rest.trim_start();
            if let Some(value) = rest.strip_prefix('"') {
                let code = word(value);
                if !code.is_empty() && value[code.len()..].starts_with('"') {
                    found.push(code);
                }
            }
        }
    }
    for (i, _) in text.match_indices("urn:arca:problem:") {
        let code = word(&text[i + 17..]);
        if !code.is_empty() {
            found.push(code);
        }
    }
    found
}

#[test]
fn every_code_the_server_returns_is_in_the_problem_enum() {
    let codes = enum_codes();
    let all: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    assert_eq!(codes, all, "the Problem schema's enum is Code::ALL");
    // Handlers return codes only through `Code`; anything that writes a problem body by
    // hand (the gateway's own 404s, tests of receivers) must use a code of the enum.
    let mut sources = Vec::new();
    for dir in ["shared/src", "functions", "knative", "minio"] {
        files(&root().join(dir), &[".rs", ".conf", ".yaml", ".yml"], &mut sources);
    }
    assert!(sources.len() > 20, "found too few sources: {}", sources.len());
    let mut unknown = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).unwrap_or_default();
        for code in literal_codes(&text) {
            if !codes.contains(&code) {
                unknown.push(format!("{}: {code}", source.display()));
            }
        }
    }
    assert!(unknown.is_empty(), "codes outside the enum:\n{}", unknown.join("\n"));
    assert_eq!(literal_codes(r#"{"code": "not_found"} urn:arca:problem:busy"#), ["not_found", "busy"]);
}

/// README's section, as generated from `Code::ALL`.
fn expected_section() -> String {
    let mut out = String::from("| code | HTTP status | meaning |\n|---|---|---|\n");
    for code in Code::ALL {
        out.push_str(&format!("| `{}` | {} | {} |\n", code.as_str(), code.status().as_u16(), code.meaning()));
    }
    out
}

#[test]
fn readme_lists_every_error_code() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("\n## Error codes\n").nth(1).expect("README has a section '## Error codes'");
    let section = section.split("\n## ").next().unwrap_or_default();
    let table: String = section.lines().filter(|l| l.starts_with('|')).map(|l| format!("{l}\n")).collect();
    assert!(
        table == expected_section(),
        "README's error codes differ from Code::ALL; the table should read:\n\n{}",
        expected_section()
    );
}
