//! The shape ARCHITECTURE.md describes, checked: every service crate has the
//! same folders, `domain/` does no I/O, the store knows neither the use cases
//! nor the API, the events do not know the API, and no service crate depends
//! on another. A change that breaks one of these
//! fails here with the file and the line, instead of in a review.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

const SERVICES: [&str; 4] = ["call-svc", "dispatch-svc", "payment-svc", "query-svc"];
const FOLDERS: [&str; 5] = ["domain", "service", "store", "events", "grpc"];
const FILES: [&str; 5] = ["lib.rs", "main.rs", "app.rs", "config.rs", "error.rs"];

/// Crates that talk to the outside world: none of them belongs in `domain/`.
const IO_CRATES: [&str; 10] = [
    "tokio",
    "tonic",
    "sqlx",
    "redis",
    "async_nats",
    "eventbus",
    "outbox",
    "hyper",
    "axum",
    "reqwest",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("system-tests sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `file` before its unit tests, which may use test helpers the
/// code itself must not (a domain test builds envelopes with `outbox`).
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

/// Whether `line` names the path `prefix` (`tokio`, `crate::grpc`) as a path
/// root, in a `use` or inline: `tokio::`, `use tokio;`, `crate::grpc::`.
fn names(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = &line[at + prefix.len()..];
        let starts_a_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts_a_path && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// The crate modules a grouped `use crate::{a::x, b, c::{y, z}}` names
/// (`crate::a`, `crate::b`, `crate::c`), which a plain search misses.
fn grouped_crate_imports(statement: &str) -> Vec<String> {
    let compact: String = statement.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(inner) = compact.split_once("usecrate::{").map(|(_, rest)| rest) else {
        return Vec::new();
    };
    let (mut depth, mut item, mut modules) = (0, String::new(), Vec::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                modules.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        if depth == 0 || !item.contains("::") {
            item.push(c);
        }
    }
    modules.push(item);
    modules
        .iter()
        .filter_map(|item| item.split([':', '{']).next())
        .filter(|module| !module.is_empty())
        .map(|module| format!("crate::{module}"))
        .collect()
}

/// `file:line: text` for every line under `dir` naming one of `forbidden`.
fn offending(dir: &Path, forbidden: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for file in sources(dir) {
        let lines = code_lines(&file);
        let mut statement: Option<(usize, String)> = None;
        for (n, line) in &lines {
            if let Some(name) = forbidden.iter().find(|name| names(line, name)) {
                found.push(format!("{}:{n}: {name}: {}", file.display(), line.trim()));
            }
            let trimmed = line.trim_start();
            if trimmed.starts_with("use crate::{") || trimmed.starts_with("pub use crate::{") {
                statement = Some((*n, String::new()));
            }
            if let Some((start, text)) = statement.as_mut() {
                text.push_str(line);
                if line.contains(';') {
                    for module in grouped_crate_imports(text.trim_start_matches("pub ")) {
                        if forbidden.contains(&module) {
                            found.push(format!("{}:{start}: {module}", file.display()));
                        }
                    }
                    statement = None;
                }
            }
        }
    }
    found
}

#[test]
fn every_service_crate_has_the_same_folders_and_files() {
    for service in SERVICES {
        let src = workspace().join(service).join("src");
        for folder in FOLDERS {
            assert!(
                src.join(folder).join("mod.rs").is_file(),
                "{service} has no {folder}/mod.rs"
            );
        }
        for file in FILES {
            assert!(src.join(file).is_file(), "{service} has no src/{file}");
        }
    }
}

#[test]
fn domain_code_does_no_io_and_knows_no_other_layer() {
    let mut forbidden: Vec<String> = IO_CRATES.iter().map(|c| (*c).to_owned()).collect();
    forbidden.extend(["store", "service", "grpc", "events", "app"].map(|m| format!("crate::{m}")));
    for service in SERVICES {
        let found = offending(&workspace().join(service).join("src/domain"), &forbidden);
        assert!(found.is_empty(), "domain/ reaches out:\n{}", found.join("\n"));
    }
}

#[test]
fn the_store_knows_no_use_case_and_neither_it_nor_the_events_know_the_api() {
    // A consumer in events/ hands what it receives to the use cases, as the
    // API does; the store only keeps rows.
    let layers = [
        (
            "store",
            ["crate::grpc", "crate::service", "crate::app"].as_slice(),
        ),
        ("events", ["crate::grpc", "crate::app"].as_slice()),
    ];
    for service in SERVICES {
        for (layer, forbidden) in layers {
            let forbidden: Vec<String> = forbidden.iter().map(|m| (*m).to_owned()).collect();
            let found = offending(&workspace().join(service).join("src").join(layer), &forbidden);
            assert!(found.is_empty(), "{layer}/ reaches up:\n{}", found.join("\n"));
        }
    }
}

#[test]
fn no_service_crate_depends_on_another_not_even_for_its_tests() {
    let crates = [SERVICES.as_slice(), &["gateway-grpc-web"]].concat();
    for krate in crates.iter().chain(&["loadgen"]) {
        let manifest = fs::read_to_string(workspace().join(krate).join("Cargo.toml")).expect("a manifest");
        for other in &crates {
            let depends = manifest
                .lines()
                .any(|line| line.split(['=', '.', ' ']).next() == Some(*other));
            assert!(
                other == krate || !depends,
                "{krate} depends on {other}; tests across services belong in system-tests"
            );
        }
    }
}

#[test]
fn the_read_side_and_the_gateway_do_not_link_the_postgresql_driver() {
    for krate in ["query-svc", "gateway-grpc-web"] {
        let output = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "--package",
                krate,
            ])
            .current_dir(workspace())
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        let drivers: Vec<&str> = tree.lines().filter(|line| line.starts_with("sqlx")).collect();
        assert!(drivers.is_empty(), "{krate} links {drivers:?}");
    }
}

#[test]
fn the_check_finds_imports_in_every_form_and_ignores_tests_and_comments() {
    let dir = std::env::temp_dir().join(format!("architecture-{}", std::process::id()));
    fs::create_dir_all(dir.join("nested")).expect("a temp dir");
    fs::write(
        dir.join("mod.rs"),
        "use std::fmt;\nuse my_tokio::x;\n// tokio::spawn in a comment\nuse crate::{\n    domain::{A, B},\n    grpc::convert,\n};\n\
         #[cfg(test)]\nmod tests {\n    use tokio::test;\n}\n",
    )
    .expect("a file");
    fs::write(
        dir.join("nested/deep.rs"),
        "fn f() {\n    let _ = sqlx::query(\"\");\n}\n",
    )
    .expect("a file");
    let forbidden = ["tokio", "sqlx", "crate::grpc", "crate::domain"].map(str::to_owned);

    let found = offending(&dir, &forbidden);

    let found: Vec<&str> = found
        .iter()
        .map(|line| {
            line.rsplit_once("architecture-")
                .map_or(line.as_str(), |(_, rest)| rest)
        })
        .collect();
    let pid = std::process::id();
    assert_eq!(
        found,
        [
            format!("{pid}/mod.rs:4: crate::domain"),
            format!("{pid}/mod.rs:4: crate::grpc"),
            format!("{pid}/nested/deep.rs:2: sqlx: let _ = sqlx::query(\"\");"),
        ]
    );
    fs::remove_dir_all(dir).expect("cleaned up");
}
