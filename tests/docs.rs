//! The README and the book (`docs/`) point only at things that exist: every relative link,
//! and every repository path they cite in backticks (alone or inside a command), resolves in
//! the checkout. A fresh clone holds only committed files, so on CI this also checks that what
//! the documentation cites is committed.

use std::path::{Path, PathBuf};

/// The top-level folders (and files) whose paths the documentation cites.
const CITED_ROOTS: [&str; 12] = [
    "src/",
    "results/",
    "datasets/",
    "experiments/",
    "configs/",
    "benches/",
    "tests/",
    "deploy/",
    "topologies/",
    "docs/",
    ".ci/",
    "Cargo.toml",
];

/// Flags whose argument is a file a command writes (it need not exist).
const OUTPUT_FLAGS: [&str; 4] = ["--out", "--out-dir", ">", "-o"];

/// One broken reference: the file, the 1-based line and what it points at.
#[derive(Debug, PartialEq)]
struct Broken {
    file: PathBuf,
    line: usize,
    target: String,
}

/// The targets of the markdown links `[text](target)` and images `![alt](target)` of a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("").to_string();
        out.push(target);
        rest = &after[end..];
    }
    out
}

/// The spans between backticks of a line (inline code).
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// A repository path cited in a code span, cleaned of what follows it in prose
/// (`src/x.rs:12`, `src/x.rs::f`, trailing punctuation); `None` for what is not a path we
/// check (a placeholder, a glob, another root).
fn cited_path(token: &str) -> Option<String> {
    let token = token.trim_matches(|c: char| matches!(c, ',' | ';' | '.' | ')' | '(' | '[' | ']' | '"' | '\''));
    if !CITED_ROOTS.iter().any(|root| token.starts_with(root)) {
        return None;
    }
    if token.contains(['<', '>', '*', '{', '}', '$', '[', '|']) {
        return None;
    }
    let token = token.split("::").next().unwrap_or(token);
    let token = match token.rsplit_once(':') {
        Some((path, line)) if line.chars().all(|c| c.is_ascii_digit() || c == '-') => path,
        _ => token,
    };
    Some(token.to_string())
}

/// Every broken link and cited path of one markdown text, `file` being where it lives.
fn check_markdown(file: &Path, text: &str, repo: &Path) -> (Vec<Broken>, usize) {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    let mut checked = 0;
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let mut report = |target: &str| broken.push(Broken { file: file.to_path_buf(), line: i + 1, target: target.to_string() });
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        // Inside a fenced block every word is a candidate (commands), else code spans.
        let spans: Vec<&str> = if in_fence { vec![line] } else { code_spans(line) };
        for span in spans {
            let words: Vec<&str> = span.split_whitespace().collect();
            for (w, word) in words.iter().enumerate() {
                if w > 0 && OUTPUT_FLAGS.contains(&words[w - 1]) {
                    continue;
                }
                if let Some(path) = cited_path(word) {
                    checked += 1;
                    if !repo.join(&path).exists() {
                        report(&path);
                    }
                }
            }
        }
        if in_fence {
            continue;
        }
        for target in link_targets(line) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if !repo.join(dir).join(path).exists() {
                report(&target);
            }
        }
    }
    (broken, checked)
}

/// README.md and every markdown file of the book, relative to the repository.
fn documentation(repo: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut stack = vec![PathBuf::from("docs")];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> =
            std::fs::read_dir(repo.join(&dir)).expect("docs/ exists").map(|e| e.expect("readable entry").path()).collect();
        entries.sort();
        for path in entries {
            let relative = path.strip_prefix(repo).expect("inside the repository").to_path_buf();
            if path.is_dir() {
                stack.push(relative);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(relative);
            }
        }
    }
    files
}

#[test]
fn every_link_and_cited_path_of_the_documentation_exists() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documentation(repo) {
        let text = std::fs::read_to_string(repo.join(&file)).expect("readable markdown");
        let (b, n) = check_markdown(&file, &text, repo);
        broken.extend(b);
        checked += n;
    }
    let listing: Vec<String> = broken.iter().map(|b| format!("{}:{}: {}", b.file.display(), b.line, b.target)).collect();
    assert!(broken.is_empty(), "{} broken references:\n{}", broken.len(), listing.join("\n"));
    // The book cites hundreds of files: a checker that finds almost none is broken itself.
    assert!(checked > 200, "only {checked} links and paths found: is the checker reading the files?");
}

#[test]
fn the_book_has_a_summary_listing_every_chapter() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = std::fs::read_to_string(repo.join("docs/SUMMARY.md")).expect("docs/SUMMARY.md");
    let listed: Vec<String> = summary.lines().flat_map(link_targets).collect();
    for file in documentation(repo).iter().filter(|f| f.starts_with("docs") && !f.ends_with("SUMMARY.md")) {
        let name = file.strip_prefix("docs").expect("in docs").to_string_lossy().into_owned();
        assert!(listed.contains(&name), "docs/SUMMARY.md does not list {name}: mdbook would not render it");
    }
}

#[test]
fn the_checker_finds_a_missing_path_a_missing_link_and_skips_placeholders() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = "See `src/lib.rs:10` and `src/no_such_file.rs`, run `meshrl ingest fortio d --out results/new.csv`.\n\
                Cells go to `results/<run>/cells/`; see [the emulator](emulator.md) and [gone](gone.md#x).\n\
                ```sh\ncargo run --release -- run experiments/no_such.toml\n```\n";
    let (broken, checked) = check_markdown(Path::new("docs/test.md"), text, repo);
    let targets: Vec<&str> = broken.iter().map(|b| b.target.as_str()).collect();
    assert_eq!(targets, ["src/no_such_file.rs", "gone.md#x", "experiments/no_such.toml"]);
    assert_eq!(broken[2].line, 4);
    assert_eq!(checked, 5);
}
