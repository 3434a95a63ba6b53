//! The module boundaries ARCHITECTURE.md states, held against the imports in `src/`.
//!
//! The rules come from the table in ARCHITECTURE.md's `## Boundaries` section, never from
//! this file, so the test follows the modules as they are moved: each row names a top-level
//! module (`src/X.rs` or `src/X/`) and the modules it may import (`nothing` for none). The
//! checker reads every `.rs` file under a module with comments and literals blanked out and
//! finds every path that reaches the crate root (`crate::`, `$crate::`, or enough `super::`
//! to climb there), in `use` trees with nested groups or in expressions, types and attributes.
//! A name re-exported by `src/lib.rs` counts as the module it comes from. Three checks:
//! (a) the rows and the modules of `src/` are the same set; (b) each module imports only what
//! its row allows (itself always); (c) the table has no cycle, so with (b) `src/` has none.
//! `src/lib.rs`, `src/main.rs` and `src/bin/` are not modules and may use anything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// The heading of the section that holds the table.
const SECTION: &str = "## Boundaries";

/// One row of the table: a module and what it may import.
#[derive(Debug)]
struct Rule {
    may_import: BTreeSet<String>,
    /// The row's line in ARCHITECTURE.md, for messages.
    line: usize,
}

/// What one problem is about, so the tests of the checker can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The table itself is malformed or missing.
    Table,
    /// (a) A module without a row, or a row without a module.
    Row,
    /// (b) An import outside its module's row.
    Import,
    /// (c) A cycle in the table.
    Cycle,
}

/// One failure of the check, with a message that says where and which rule.
#[derive(Debug)]
struct Problem {
    kind: Kind,
    message: String,
}

impl Problem {
    fn new(kind: Kind, message: String) -> Self {
        Problem { kind, message }
    }
}

/// Checks the files of `src/` (paths relative to the crate, such as `src/store.rs`, with
/// their text) against the Boundaries table of `architecture` (named `doc` in messages).
/// Returns every problem found; none means the boundaries hold.
fn check(doc: &str, architecture: &str, files: &[(String, String)]) -> Vec<Problem> {
    let rules = match parse_boundaries(doc, architecture) {
        Ok(rules) => rules,
        Err(errors) => {
            return errors
                .into_iter()
                .map(|e| Problem::new(Kind::Table, e))
                .collect()
        }
    };
    let mut problems = Vec::new();

    // (a) Rows and modules are the same set.
    let mut modules: BTreeMap<String, String> = BTreeMap::new(); // module -> first file seen
    for (path, _) in files {
        if let Some(module) = module_of(path) {
            modules.entry(module).or_insert_with(|| path.clone());
        }
    }
    for (module, path) in &modules {
        if !rules.contains_key(module) {
            problems.push(Problem::new(
                Kind::Row,
                format!("{path}: module `{module}` has no row in {doc}'s {SECTION} table"),
            ));
        }
    }
    for (module, rule) in &rules {
        if !modules.contains_key(module) {
            problems.push(Problem::new(
                Kind::Row,
                format!(
                    "{doc}:{}: row `{module}` names no module of src/ (no src/{module}.rs or src/{module}/)",
                    rule.line
                ),
            ));
        }
        for allowed in &rule.may_import {
            if !modules.contains_key(allowed) {
                problems.push(Problem::new(
                    Kind::Row,
                    format!(
                        "{doc}:{}: `{module}` may import `{allowed}`, but src/ has no module `{allowed}`",
                        rule.line
                    ),
                ));
            }
        }
    }

    // (b) Every import is within its module's row.
    let reexports = files
        .iter()
        .find(|(path, _)| path == "src/lib.rs")
        .map(|(_, text)| root_reexports(text, &modules))
        .unwrap_or_default();
    let tests = test_files(files);
    for (path, text) in files {
        let Some(importer) = module_of(path) else {
            continue;
        };
        if tests.contains(path) {
            continue;
        }
        // A module without a row was reported under (a); nothing to hold it to.
        let Some(rule) = rules.get(&importer) else {
            continue;
        };
        for root in root_refs(text, file_depth(path)) {
            let (imported, via) = if root.name == "*" {
                problems.push(Problem::new(
                    Kind::Import,
                    format!(
                        "{path}:{}: `{importer}` imports every module at once ({}*), which hides what it imports; name the items instead",
                        root.line, root.spelled
                    ),
                ));
                continue;
            } else if modules.contains_key(&root.name) {
                (root.name.clone(), String::new())
            } else if let Some((module, line)) = reexports.get(&root.name) {
                (
                    module.clone(),
                    format!(", re-exported from `{module}` by src/lib.rs:{line}"),
                )
            } else {
                // An item of lib.rs itself (or a macro exported at the root): not a module.
                continue;
            };
            if imported == importer || rule.may_import.contains(&imported) {
                continue;
            }
            problems.push(Problem::new(
                Kind::Import,
                format!(
                    "{path}:{}: `{importer}` imports `{imported}` ({}{}{via}), but {doc}:{} says `{importer}` {}",
                    root.line,
                    root.spelled,
                    root.name,
                    rule.line,
                    allowed_text(&rule.may_import)
                ),
            ));
        }
    }

    // (c) The table has no cycle.
    for cycle in table_cycles(&rules) {
        let lines: Vec<String> = cycle[..cycle.len() - 1]
            .iter()
            .map(|m| rules[m].line.to_string())
            .collect();
        problems.push(Problem::new(
            Kind::Cycle,
            format!(
                "{doc}: the table allows the cycle {} (rows at lines {})",
                cycle.join(" -> "),
                lines.join(", ")
            ),
        ));
    }
    problems
}

/// "may import nothing" or "may import only `a`, `b`".
fn allowed_text(allowed: &BTreeSet<String>) -> String {
    if allowed.is_empty() {
        "may import nothing".to_string()
    } else {
        let names: Vec<String> = allowed.iter().map(|m| format!("`{m}`")).collect();
        format!("may import only {}", names.join(", "))
    }
}

/// All problems as one message for a failing assertion.
fn report(doc: &str, problems: &[Problem]) -> String {
    let mut out = format!(
        "the module boundaries of {doc} do not hold ({} problem{}):\n",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for (kind, title) in [
        (Kind::Table, "the table"),
        (Kind::Row, "(a) rows and modules"),
        (Kind::Import, "(b) imports outside their rows"),
        (Kind::Cycle, "(c) cycles in the table"),
    ] {
        let of_kind: Vec<&Problem> = problems.iter().filter(|p| p.kind == kind).collect();
        if !of_kind.is_empty() {
            let _ = writeln!(out, "{title}:");
            for problem in of_kind {
                let _ = writeln!(out, "  {}", problem.message);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The table

/// Reads the first table of the `## Boundaries` section: module -> rule. Every error in the
/// table is returned (not only the first), each naming `doc:line`.
fn parse_boundaries(doc: &str, text: &str) -> Result<BTreeMap<String, Rule>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    // Headings and tables inside fenced code blocks are examples, not the document's.
    let mut in_fence = false;
    let mut visible = Vec::with_capacity(lines.len());
    for line in &lines {
        let fence = line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
        if fence {
            in_fence = !in_fence;
        }
        visible.push(!fence && !in_fence);
    }
    let heading =
        |i: usize| visible[i] && (lines[i].starts_with("# ") || lines[i].starts_with("## "));
    let Some(start) = (0..lines.len()).find(|&i| visible[i] && lines[i].trim_end() == SECTION)
    else {
        return Err(vec![format!(
            "{doc} has no `{SECTION}` section; add one with a table \
             `| module | may import |`, one row per top-level module of src/ \
             (`nothing` for a module that imports none)"
        )]);
    };
    let end = (start + 1..lines.len())
        .find(|&i| heading(i))
        .unwrap_or(lines.len());
    let Some(first) =
        (start + 1..end).find(|&i| visible[i] && lines[i].trim_start().starts_with('|'))
    else {
        return Err(vec![format!(
            "{doc}:{}: the `{SECTION}` section has no table `| module | may import |`",
            start + 1
        )]);
    };
    let last = (first..end)
        .find(|&i| !(visible[i] && lines[i].trim_start().starts_with('|')))
        .unwrap_or(end);

    let mut errors = Vec::new();
    let header = cells(lines[first]);
    let width = header.len();
    let names: Vec<String> = header.iter().map(|c| c.to_lowercase()).collect();
    if width < 2 || names[0] != "module" || names[1] != "may import" {
        errors.push(format!(
            "{doc}:{}: the table's header must be `| module | may import |`, not `{}`",
            first + 1,
            lines[first].trim()
        ));
    }
    let separator_ok = first + 1 < last && {
        let separator = cells(lines[first + 1]);
        separator.len() == width
            && separator.iter().all(|c| {
                let dashes = c.trim_start_matches(':').trim_end_matches(':');
                !dashes.is_empty() && dashes.chars().all(|ch| ch == '-')
            })
    };
    if !separator_ok {
        errors.push(format!(
            "{doc}:{}: the table's header must be followed by a separator row `|---|---|`",
            first + 2
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut rules: BTreeMap<String, Rule> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate().take(last).skip(first + 2) {
        let number = i + 1;
        let row = cells(line);
        if row.len() != width {
            errors.push(format!(
                "{doc}:{number}: a row needs {width} cells, this one has {}: `{}`",
                row.len(),
                line.trim()
            ));
            continue;
        }
        let module = unquote(&row[0]);
        if !is_ident(module) {
            errors.push(format!(
                "{doc}:{number}: `{module}` is not a module name (one identifier, backticks optional)"
            ));
            continue;
        }
        let mut may_import = BTreeSet::new();
        let allowed = row[1].trim();
        if allowed.is_empty() {
            errors.push(format!(
                "{doc}:{number}: `{module}` may import an empty cell; write `nothing` for no module"
            ));
            continue;
        }
        if unquote(allowed) != "nothing" {
            for name in allowed.split(',') {
                let name = unquote(name);
                if name == "nothing" {
                    errors.push(format!(
                        "{doc}:{number}: `{module}` may import `nothing` and other modules at once"
                    ));
                } else if !is_ident(name) {
                    errors.push(format!(
                        "{doc}:{number}: `{module}` may import `{}`, which is not a module name \
                         (write names separated by commas, backticks optional, or `nothing`)",
                        name.trim()
                    ));
                } else if !may_import.insert(name.to_string()) {
                    errors.push(format!(
                        "{doc}:{number}: `{module}` may import `{name}` twice"
                    ));
                }
            }
        }
        if let Some(earlier) = rules.get(module) {
            errors.push(format!(
                "{doc}:{number}: a second row for `{module}` (the first is at line {})",
                earlier.line
            ));
            continue;
        }
        rules.insert(
            module.to_string(),
            Rule {
                may_import,
                line: number,
            },
        );
    }
    if rules.is_empty() && errors.is_empty() {
        errors.push(format!("{doc}:{}: the table has no rows", first + 1));
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// The cells of one table row, trimmed, without the outer pipes.
fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// A name with its optional backticks taken off.
fn unquote(name: &str) -> &str {
    let name = name.trim();
    name.strip_prefix('`')
        .and_then(|n| n.strip_suffix('`'))
        .unwrap_or(name)
        .trim()
}

fn is_ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Every cycle of the table's graph (self-rows left out), as `a, b, ..., a`: for each edge
/// on a cycle, the shortest cycle through it, so every edge that closes a loop is shown.
fn table_cycles(rules: &BTreeMap<String, Rule>) -> Vec<Vec<String>> {
    let edges = |m: &str| -> Vec<&str> {
        rules[m]
            .may_import
            .iter()
            .filter(|n| *n != m && rules.contains_key(*n))
            .map(String::as_str)
            .collect()
    };
    let mut cycles = BTreeSet::new();
    for from in rules.keys() {
        for to in edges(from) {
            // Shortest path to -> from, breadth first.
            let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = VecDeque::from([to]);
            parent.insert(to, to);
            while let Some(at) = queue.pop_front() {
                if at == from.as_str() {
                    break;
                }
                for next in edges(at) {
                    if !parent.contains_key(next) {
                        parent.insert(next, at);
                        queue.push_back(next);
                    }
                }
            }
            if !parent.contains_key(from.as_str()) {
                continue;
            }
            let mut path = vec![from.as_str()];
            let mut at = from.as_str();
            while at != to {
                at = parent[at];
                path.push(at);
            }
            path.reverse(); // to ... from
            let mut cycle: Vec<String> = std::iter::once(from.as_str())
                .chain(path)
                .map(str::to_string)
                .collect(); // from, to, ..., from
            cycle.pop();
            // One spelling per cycle: rotated to start at its least name.
            let least = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
            cycle.rotate_left(least);
            let first = cycle[0].clone();
            cycle.push(first);
            cycles.insert(cycle);
        }
    }
    let mut cycles: Vec<Vec<String>> = cycles.into_iter().collect();
    cycles.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    cycles
}

// ---------------------------------------------------------------------------------------
// The source

/// Every `.rs` file under `src_dir`, with its path relative to the crate (`src/...`), in a
/// stable order.
fn read_src(src_dir: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let rel = format!("{rel}/{name}");
            if path.is_dir() {
                walk(&path, &rel, out);
            } else if name.ends_with(".rs") {
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(src_dir, "src", &mut out);
    out
}

/// The regex of a test-only module: `#[cfg(test)]`, then (after other attributes) `mod`.
fn test_module() -> regex::Regex {
    regex::Regex::new(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*(?:#\s*\[[^\]]*\]\s*)*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z_0-9]*)\s*([;{])")
        .expect("regex")
}

/// Test code may import any module (a store test checks what `select` shows of what it
/// stored): the boundaries are the product's. `text` (comments and literals stripped) with
/// every inline `#[cfg(test)] mod x { ... }` blanked, line breaks kept.
fn without_test_code(text: &str) -> String {
    let mut out: Vec<char> = text.chars().collect();
    let chars = out.clone();
    let byte_to_char: Vec<usize> = {
        let mut map = vec![0; text.len() + 1];
        for (n, (b, _)) in text.char_indices().enumerate() {
            map[b] = n;
        }
        map[text.len()] = chars.len();
        map
    };
    for found in test_module().captures_iter(text) {
        let (Some(whole), Some(end)) = (found.get(0), found.get(2)) else {
            continue;
        };
        if end.as_str() != "{" {
            continue;
        }
        let start = byte_to_char[whole.start()];
        let mut depth = 0usize;
        let mut i = byte_to_char[end.start()];
        while i < chars.len() {
            match chars[i] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        for c in out.iter_mut().take((i + 1).min(chars.len())).skip(start) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }
    out.into_iter().collect()
}

/// The files of test-only modules (`#[cfg(test)] mod tests;` declares `tests.rs` or
/// `tests/mod.rs` beside or under its parent), and every file under them.
fn test_files(files: &[(String, String)]) -> BTreeSet<String> {
    let mut dirs = Vec::new();
    for (path, text) in files {
        let code = strip_comments_and_literals(text);
        for found in test_module().captures_iter(&code) {
            if found.get(2).map(|m| m.as_str()) != Some(";") {
                continue;
            }
            let name = &found[1];
            // A file's child modules live in its own folder: src/a/mod.rs -> src/a/,
            // src/a/b.rs -> src/a/b/.
            let folder = match path.strip_suffix("/mod.rs") {
                Some(dir) => dir.to_string(),
                None => path.trim_end_matches(".rs").to_string(),
            };
            dirs.push(format!("{folder}/{name}"));
        }
    }
    files
        .iter()
        .map(|(path, _)| path)
        .filter(|path| {
            dirs.iter()
                .any(|d| *path == &format!("{d}.rs") || path.starts_with(&format!("{d}/")))
        })
        .cloned()
        .collect()
}

/// The top-level module a file belongs to: `src/X.rs` and everything under `src/X/` are `X`.
/// `src/lib.rs` (the root), `src/main.rs` and `src/bin/` (other crates) belong to none.
fn module_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    match rest.split_once('/') {
        Some(("bin", _)) => None,
        Some((dir, _)) => Some(dir.to_string()),
        None => match rest.strip_suffix(".rs")? {
            "lib" | "main" => None,
            module => Some(module.to_string()),
        },
    }
}

/// How many modules deep a file's own module is: `src/lib.rs` 0, `src/X.rs` and
/// `src/X/mod.rs` 1, `src/X/Y.rs` 2. That many `super::` reach the crate root.
fn file_depth(path: &str) -> usize {
    let parts = path.strip_prefix("src/").unwrap_or(path).split('/').count();
    match path.rsplit('/').next() {
        Some("mod.rs") => parts - 1,
        Some("lib.rs" | "main.rs") if parts == 1 => 0,
        _ => parts,
    }
}

/// The text with comments (doc comments too) and string, char and raw string literals
/// replaced by spaces, line breaks kept, so what is left is code at the same lines.
fn strip_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied();
    let ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    // A literal's prefix (`r`, `br`, `cr`) starts a token only if no identifier runs into it.
    let starts_token = |i: usize| {
        i == 0
            || !ident_char(c[i - 1])
            || (matches!(c[i - 1], 'b' | 'c') && (i == 1 || !ident_char(c[i - 2])))
    };
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if at(i + 1) == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                // Block comments nest in Rust.
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                    } else if c[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                    } else {
                        blank(&mut out, c[i]);
                        i += 1;
                        continue;
                    }
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                }
            }
            '"' => {
                blank(&mut out, c[i]);
                i += 1;
                while i < c.len() {
                    let ch = c[i];
                    blank(&mut out, ch);
                    i += 1;
                    if ch == '\\' {
                        if let Some(escaped) = at(i) {
                            blank(&mut out, escaped);
                            i += 1;
                        }
                    } else if ch == '"' {
                        break;
                    }
                }
            }
            'r' if starts_token(i) => {
                let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
                if at(i + 1 + hashes) != Some('"') {
                    // An identifier (`r`, `r#type`, `return`).
                    out.push('r');
                    i += 1;
                    continue;
                }
                for _ in 0..hashes + 2 {
                    out.push(' ');
                }
                i += hashes + 2;
                while i < c.len() {
                    if c[i] == '"'
                        && c[i + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&ch| ch == '#')
                            .count()
                            == hashes
                    {
                        for _ in 0..hashes + 1 {
                            out.push(' ');
                        }
                        i += hashes + 1;
                        break;
                    }
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}', '\''), else a lifetime or a label.
                let end = if at(i + 1) == Some('\\') {
                    (i + 3..c.len()).find(|&k| c[k] == '\'')
                } else if at(i + 2) == Some('\'') && at(i + 1) != Some('\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        while i <= end {
                            blank(&mut out, c[i]);
                            i += 1;
                        }
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// A token of stripped code: enough of Rust's to read paths.
#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit() {
            // A number (`1u8`, `0x1f`): not an identifier.
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
        } else if ch == '_' || ch.is_alphabetic() {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let mut name: String = c[start..i].iter().collect();
            // A raw identifier `r#name` is `name`.
            if name == "r" && c.get(i) == Some(&'#') && c.get(i + 1).is_some_and(|&n| ident_char(n))
            {
                let start = i + 1;
                i = start;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                name = c[start..i].iter().collect();
            }
            tokens.push(Token {
                tok: Tok::Ident(name),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn is_ident_tok(tokens: &[Token], i: usize, name: &str) -> bool {
    matches!(tokens.get(i), Some(Token { tok: Tok::Ident(n), .. }) if n == name)
}

fn is_tok(tokens: &[Token], i: usize, tok: &Tok) -> bool {
    tokens.get(i).is_some_and(|t| &t.tok == tok)
}

/// One leaf of a path tree: `a::b::c` in `crate::a::{b::c, d}`, with the line of each segment.
#[derive(Debug, Default, Clone)]
struct Leaf {
    segments: Vec<(String, usize)>,
    /// Ends in `*`.
    glob: bool,
    /// `as name`.
    rename: Option<String>,
}

/// Reads the path tree starting at `tokens[i]` (just after a `::`) under `prefix`: a plain
/// path (which stops at anything but a name or `::`, such as `::<` or `(`), a `*`, or a
/// `{...}` group of trees, nested as deep as written. Pushes its leaves; returns the index
/// after it.
fn path_tree(tokens: &[Token], mut i: usize, prefix: &Leaf, out: &mut Vec<Leaf>) -> usize {
    let mut leaf = prefix.clone();
    loop {
        match tokens.get(i).map(|t| (&t.tok, t.line)) {
            Some((Tok::Ident(name), line)) => {
                leaf.segments.push((name.clone(), line));
                i += 1;
                if is_tok(tokens, i, &Tok::PathSep) {
                    i += 1;
                    continue;
                }
                if is_ident_tok(tokens, i, "as") {
                    if let Some(Token {
                        tok: Tok::Ident(rename),
                        ..
                    }) = tokens.get(i + 1)
                    {
                        leaf.rename = Some(rename.clone());
                        i += 2;
                    }
                }
                out.push(leaf);
                return i;
            }
            Some((Tok::Punct('*'), _)) => {
                leaf.glob = true;
                out.push(leaf);
                return i + 1;
            }
            Some((Tok::Punct('{'), _)) => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        Some(_) => {
                            let before = i;
                            i = path_tree(tokens, i, &leaf, out);
                            if i == before {
                                // Not a tree (broken code): step over it.
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                if leaf.segments.len() > prefix.segments.len() {
                    out.push(leaf);
                }
                return i;
            }
        }
    }
}

/// A name a file reaches at the crate root: `a` in `crate::a::x`.
#[derive(Debug)]
struct RootRef {
    /// The root-level name, or `*` for a glob of the root.
    name: String,
    line: usize,
    /// How the root was reached: `crate::`, `$crate::`, `super::super::`.
    spelled: String,
}

/// Every root-level name a file's code reaches, given how deep its module is (see
/// [`file_depth`]). `self::` and `super::` that stay inside the module do not count.
fn root_refs(text: &str, depth: usize) -> Vec<RootRef> {
    let tokens = tokenize(&without_test_code(&strip_comments_and_literals(text)));
    let mut refs = Vec::new();
    // Which open braces are inline `mod x { }` bodies: each is one module deeper.
    let mut braces: Vec<bool> = Vec::new();
    for i in 0..tokens.len() {
        match &tokens[i].tok {
            Tok::Punct('{') => {
                let is_mod = i >= 2
                    && is_ident_tok(&tokens, i - 2, "mod")
                    && matches!(tokens[i - 1].tok, Tok::Ident(_));
                braces.push(is_mod);
                continue;
            }
            Tok::Punct('}') => {
                braces.pop();
                continue;
            }
            _ => {}
        }
        // Only where a path starts: `a::crate` and `a::super` are not (and not valid).
        if i > 0 && tokens[i - 1].tok == Tok::PathSep {
            continue;
        }
        let dollar = i > 0 && tokens[i - 1].tok == Tok::Punct('$');
        let (start, spelled) =
            if is_ident_tok(&tokens, i, "crate") && is_tok(&tokens, i + 1, &Tok::PathSep) {
                (
                    i + 2,
                    if dollar { "$crate::" } else { "crate::" }.to_string(),
                )
            } else if is_ident_tok(&tokens, i, "super") || is_ident_tok(&tokens, i, "self") {
                let mut j = i;
                let mut spelled = String::new();
                if is_ident_tok(&tokens, j, "self") && is_tok(&tokens, j + 1, &Tok::PathSep) {
                    j += 2;
                    spelled.push_str("self::");
                }
                let mut supers = 0;
                while is_ident_tok(&tokens, j, "super") && is_tok(&tokens, j + 1, &Tok::PathSep) {
                    j += 2;
                    supers += 1;
                    spelled.push_str("super::");
                }
                let module_depth = depth + braces.iter().filter(|&&m| m).count();
                if supers == 0 || supers != module_depth {
                    continue;
                }
                (j, spelled)
            } else {
                continue;
            };
        let mut leaves = Vec::new();
        path_tree(&tokens, start, &Leaf::default(), &mut leaves);
        // `crate::a::{b, c::{d, e}}` imports `a` once.
        let mut seen = BTreeSet::new();
        for leaf in leaves {
            let mut segments = leaf.segments.iter();
            let first = match segments.next() {
                // `crate::{self::a}` is `crate::a`; `crate::{self}` is the root itself.
                Some((name, _)) if name == "self" => segments.next(),
                first => first,
            };
            match first {
                Some((name, _)) if !seen.insert(name.clone()) => {}
                Some((name, line)) => refs.push(RootRef {
                    name: name.clone(),
                    line: *line,
                    spelled: spelled.clone(),
                }),
                None if leaf.glob => refs.push(RootRef {
                    name: "*".to_string(),
                    line: tokens[start.min(tokens.len() - 1)].line,
                    spelled: spelled.clone(),
                }),
                None => {}
            }
        }
    }
    refs
}

/// The names `src/lib.rs` brings into the crate root from a module (`pub use store::Store;`
/// makes `crate::Store` a way into `store`): name -> (module, line). A child module sees the
/// root's private `use`s too, so all of them count.
fn root_reexports(
    lib: &str,
    modules: &BTreeMap<String, String>,
) -> BTreeMap<String, (String, usize)> {
    let tokens = tokenize(&strip_comments_and_literals(lib));
    let mut names = BTreeMap::new();
    let mut depth = 0usize;
    for i in 0..tokens.len() {
        match tokens[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth != 0 || !is_ident_tok(&tokens, i, "use") {
            continue;
        }
        let mut leaves = Vec::new();
        path_tree(&tokens, i + 1, &Leaf::default(), &mut leaves);
        for leaf in leaves {
            let mut segments: Vec<&str> = leaf.segments.iter().map(|(s, _)| s.as_str()).collect();
            // At the root, `crate::a`, `self::a` and `a` are the same path.
            if matches!(segments.first(), Some(&"crate" | &"self")) {
                segments.remove(0);
            }
            if segments.last() == Some(&"self") {
                segments.pop();
            }
            let Some(module) = segments.first().filter(|m| modules.contains_key(**m)) else {
                continue;
            };
            let Some(name) = leaf.rename.as_deref().or(segments.last().copied()) else {
                continue;
            };
            if leaf.glob || name == "_" {
                continue;
            }
            let line = leaf.segments.last().map_or(tokens[i].line, |(_, l)| *l);
            names.insert(name.to_string(), (module.to_string(), line));
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// The real check

#[test]
fn the_source_keeps_the_boundaries_architecture_md_states() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md"))
        .unwrap_or_else(|e| panic!("reading ARCHITECTURE.md: {e}"));
    let files = read_src(&root.join("src"));
    assert!(
        files.iter().any(|(path, _)| module_of(path).is_some()),
        "found no module in src/"
    );
    let problems = check("ARCHITECTURE.md", &architecture, &files);
    assert!(
        problems.is_empty(),
        "{}",
        report("ARCHITECTURE.md", &problems)
    );
}

/// Where the code outside `src/store/` names the sled crate or engine (a path segment
/// `sled`, comments and literals aside): `file:line` each.
fn sled_outside_the_store(files: &[(String, String)]) -> Vec<String> {
    let word = regex::Regex::new(r"\bsled\b").expect("regex");
    let mut found = Vec::new();
    for (path, text) in files {
        if path.starts_with("src/store/") {
            continue;
        }
        let code = strip_comments_and_literals(text);
        for (n, line) in code.lines().enumerate() {
            if word.is_match(line) {
                found.push(format!(
                    "{path}:{}: {}",
                    n + 1,
                    text.lines().nth(n).unwrap_or("").trim()
                ));
            }
        }
    }
    found
}

#[test]
fn nothing_outside_the_store_names_sled() {
    let src = read_src(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let found = sled_outside_the_store(&src);
    assert!(
        found.is_empty(),
        "only src/store/ may know the engine (the rest goes through store::Store):\n{}",
        found.join("\n")
    );
    // And the check sees a use of it, but not a mention in a comment or a string.
    let planted = files(&[(
        "src/render.rs",
        "// sled here is fine\nconst S: &str = \"sled\";\nuse crate::store::sled::SledStore;\n",
    )]);
    assert_eq!(sled_outside_the_store(&planted).len(), 1);
}

// ---------------------------------------------------------------------------------------
// The checker on small inputs: it can fail, and fails only where it should.

/// A table document in the shape ARCHITECTURE.md uses.
fn table(rows: &[(&str, &str)]) -> String {
    let mut doc = String::from("# Architecture\n\nIntro.\n\n## Boundaries\n\nText.\n\n| module | may import |\n|---|---|\n");
    for (module, allowed) in rows {
        let _ = writeln!(doc, "| `{module}` | {allowed} |");
    }
    doc.push_str("\n## Invariants\n\n| module | may import |\n|---|---|\n| `ignored` | x y |\n");
    doc
}

fn files(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

fn of_kind(problems: &[Problem], kind: Kind) -> Vec<&str> {
    problems
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| p.message.as_str())
        .collect()
}

const ROWS: &[(&str, &str)] = &[
    ("model", "nothing"),
    ("config", "`model`"),
    ("store", "`model`, `config`"),
    ("fetch", "model, `config`, `store`"),
];

#[test]
fn allowed_imports_pass() {
    let problems = check(
        "A.md",
        &table(ROWS),
        &files(&[
            (
                "src/lib.rs",
                "pub mod model; pub mod config; pub mod store; pub mod fetch;",
            ),
            (
                "src/main.rs",
                "use feedmill::fetch; fn main() { crate::anything(); }",
            ),
            (
                "src/model.rs",
                "pub struct Item; use crate::model::Item as Same;",
            ),
            ("src/config.rs", "use crate::model::Item;\nuse std::fmt;"),
            (
                "src/store.rs",
                "use crate::{config::Config, model::{self, Item}};\nmod recent;",
            ),
            (
                "src/store/recent.rs",
                "use super::Store;\nuse crate::model;\nfn f() { super::x(); }",
            ),
            (
                "src/fetch/mod.rs",
                "use crate::store;\nuse self::client::Client;\npub(crate) fn f() {}",
            ),
            (
                "src/fetch/client.rs",
                "use super::f;\n#[cfg(test)]\nmod tests { use super::*; use super::super::f; }",
            ),
        ]),
    );
    assert!(problems.is_empty(), "{}", report("A.md", &problems));
}

#[test]
fn a_forbidden_import_inside_a_nested_multi_line_use_group_is_found() {
    let store = "//! The store.\n\
                 use crate::{\n\
                 \x20   config::Config,\n\
                 \x20   model::{\n\
                 \x20       Item,\n\
                 \x20       fetch_not_a_module,\n\
                 \x20   },\n\
                 \x20   fetch::{self, client::{Client, Request}},\n\
                 };\n";
    let problems = check(
        "A.md",
        &table(ROWS),
        &files(&[
            ("src/model.rs", ""),
            ("src/config.rs", ""),
            ("src/store.rs", store),
            ("src/fetch.rs", ""),
        ]),
    );
    assert_eq!(
        of_kind(&problems, Kind::Import),
        ["src/store.rs:8: `store` imports `fetch` (crate::fetch), but A.md:13 says `store` may import only `config`, `model`"],
        "{problems:#?}"
    );
}

#[test]
fn every_way_of_naming_the_crate_root_counts() {
    let config = [
        ("pub(crate) use crate::fetch::Client;", 1),
        ("fn f() -> crate::fetch::Client { todo!() }", 2),
        ("fn g() { let _ = crate :: fetch :: get::<u8>(); }", 3),
        ("#[derive(crate::fetch::Derive)]\nstruct S;", 4),
        ("macro_rules! m { () => { $crate::fetch::get() }; }", 6),
        ("use super::fetch::get;", 7),
        ("mod inner { fn h() { super::super::fetch::get(); } }", 8),
        ("use {std::fmt, crate::fetch};", 9),
        ("use crate::Client;", 10),
        ("use crate::*;", 11),
        ("use crate::{model::Item, {fetch::Get}};", 12),
    ];
    let text: String = config.iter().map(|(line, _)| format!("{line}\n")).collect();
    let problems = check(
        "A.md",
        &table(ROWS),
        &files(&[
            (
                "src/lib.rs",
                "pub mod fetch;\npub use fetch::Client;\npub fn helper() {}",
            ),
            ("src/model.rs", ""),
            ("src/config.rs", &text),
            (
                "src/store.rs",
                "use crate::helper;\n#[derive(Debug)]\npub(crate) struct S;",
            ),
            ("src/fetch.rs", ""),
        ]),
    );
    let found = of_kind(&problems, Kind::Import);
    let lines: Vec<usize> = config.iter().map(|(_, line)| *line).collect();
    let found_lines: Vec<usize> = found
        .iter()
        .map(|m| {
            m.split(':')
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(found_lines, lines, "{found:#?}");
    assert!(found[5].contains("(super::fetch)"), "{}", found[5]);
    assert!(found[6].contains("(super::super::fetch)"), "{}", found[6]);
    assert!(found[4].contains("($crate::fetch)"), "{}", found[4]);
    assert!(
        found[8]
            .contains("imports `fetch` (crate::Client, re-exported from `fetch` by src/lib.rs:2)"),
        "{}",
        found[8]
    );
    assert!(
        found[9].contains("imports every module at once (crate::*)"),
        "{}",
        found[9]
    );
}

#[test]
fn imports_in_comments_and_literals_are_ignored_and_code_after_them_is_not() {
    let store = r####"//! Not `use crate::fetch;` in a doc comment.
/// Nor [`crate::fetch::Client`] in an item's.
// Nor use crate::fetch; in a comment.
/* Nor crate::fetch in a block, /* nested crate::fetch */ crate::fetch */
/** Nor crate::fetch here. */
const A: &str = "use crate::fetch; \" crate::fetch \\";
const B: &str = r#"crate::fetch "quoted" "# ;
const C: &[u8] = br##"crate::fetch "# still inside crate::fetch"##;
const D: char = '"'; const E: char = '\''; const F: u8 = b'\\';
fn lifetimes<'a>(x: &'a str) -> &'a str { 'outer: loop { break 'outer x; } }
const G: &str = "multi
line crate::fetch
string";
use crate::fetch::Found;
"####;
    let problems = check(
        "A.md",
        &table(ROWS),
        &files(&[
            ("src/model.rs", ""),
            ("src/config.rs", ""),
            ("src/store.rs", store),
            ("src/fetch.rs", ""),
        ]),
    );
    assert_eq!(
        of_kind(&problems, Kind::Import),
        ["src/store.rs:14: `store` imports `fetch` (crate::fetch), but A.md:13 says `store` may import only `config`, `model`"],
        "{problems:#?}"
    );
}

#[test]
fn a_module_that_may_import_nothing_says_so() {
    let problems = check(
        "A.md",
        &table(ROWS),
        &files(&[
            ("src/model.rs", "use crate::config::Config;"),
            ("src/config.rs", ""),
            ("src/store.rs", ""),
            ("src/fetch.rs", ""),
        ]),
    );
    assert_eq!(
        of_kind(&problems, Kind::Import),
        ["src/model.rs:1: `model` imports `config` (crate::config), but A.md:11 says `model` may import nothing"]
    );
}

#[test]
fn test_code_may_import_anything_and_the_product_may_not() {
    let doc = table(&[("store", "nothing"), ("select", "`store`")]);
    let src = files(&[
        (
            "src/store/mod.rs",
            "#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline {\n    use crate::select::x;\n    fn f() { { } }\n}\nfn g() {}\n",
        ),
        ("src/store/tests.rs", "use crate::select::select;\n"),
        ("src/select.rs", "use crate::store::Store;\n"),
    ]);
    assert!(check("ARCHITECTURE.md", &doc, &src).is_empty());
    // Outside the test module, the same import is reported, at its line.
    let src = files(&[
        (
            "src/store/mod.rs",
            "#[cfg(test)]\nmod inline {\n    fn f() { { } }\n}\nuse crate::select::x;\n",
        ),
        ("src/select.rs", "use crate::store::Store;\n"),
    ]);
    let problems = check("ARCHITECTURE.md", &doc, &src);
    assert_eq!(of_kind(&problems, Kind::Import).len(), 1, "{problems:?}");
    assert!(of_kind(&problems, Kind::Import)[0].starts_with("src/store/mod.rs:5:"));
}

#[test]
fn a_cycle_in_the_table_is_reported() {
    let rows = [
        ("model", "nothing"),
        ("config", "model, store"),
        ("store", "config, fetch, store"),
        ("fetch", "config"),
        ("daemon", "serve, model"),
        ("serve", "daemon"),
    ];
    let names = ["model", "config", "store", "fetch", "daemon", "serve"];
    let src: Vec<(String, String)> = names
        .iter()
        .map(|m| (format!("src/{m}.rs"), String::new()))
        .collect();
    let problems = check("A.md", &table(&rows), &src);
    assert_eq!(
        of_kind(&problems, Kind::Cycle),
        [
            "A.md: the table allows the cycle config -> store -> config (rows at lines 12, 13)",
            "A.md: the table allows the cycle daemon -> serve -> daemon (rows at lines 15, 16)",
            "A.md: the table allows the cycle config -> store -> fetch -> config (rows at lines 12, 13, 14)",
        ],
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn a_missing_row_and_a_row_without_a_module_are_reported() {
    let problems = check(
        "A.md",
        &table(&[
            ("model", "nothing"),
            ("config", "model, gone"),
            ("old", "model"),
        ]),
        &files(&[
            ("src/lib.rs", ""),
            ("src/main.rs", ""),
            ("src/bin/tool.rs", ""),
            ("src/model.rs", ""),
            ("src/config.rs", ""),
            ("src/parse/xml.rs", "use crate::config;"),
        ]),
    );
    assert_eq!(
        of_kind(&problems, Kind::Row),
        [
            "src/parse/xml.rs: module `parse` has no row in A.md's ## Boundaries table",
            "A.md:12: `config` may import `gone`, but src/ has no module `gone`",
            "A.md:13: row `old` names no module of src/ (no src/old.rs or src/old/)",
        ]
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn errors_in_the_table_itself_are_failures() {
    let src = files(&[("src/model.rs", "")]);
    let messages = |doc: &str| -> Vec<String> {
        check("A.md", doc, &src)
            .into_iter()
            .inspect(|p| assert_eq!(p.kind, Kind::Table, "{p:?}"))
            .map(|p| p.message)
            .collect()
    };
    assert!(messages("# A\n\n## Boundary\n")[0].starts_with("A.md has no `## Boundaries` section"));
    // A table in a code block is an example, and the section ends at the next heading.
    assert_eq!(
        messages("## Boundaries\n```\n| module | may import |\n|---|---|\n```\n## Next\n| module | may import |\n|---|---|\n| model | nothing |\n"),
        ["A.md:1: the `## Boundaries` section has no table `| module | may import |`"]
    );
    assert_eq!(
        messages("## Boundaries\n| module | imports |\n| model | nothing |\n"),
        [
            "A.md:2: the table's header must be `| module | may import |`, not `| module | imports |`",
            "A.md:3: the table's header must be followed by a separator row `|---|---|`",
        ]
    );
    assert_eq!(
        messages(&table(&[
            ("model", "nothing"),
            ("model", "nothing"),
            ("config", ""),
            ("store", "model config"),
            ("fetch", "nothing, model"),
            ("two words", "model"),
            ("serve", "model, model"),
        ])),
        [
            "A.md:12: a second row for `model` (the first is at line 11)",
            "A.md:13: `config` may import an empty cell; write `nothing` for no module",
            "A.md:14: `store` may import `model config`, which is not a module name (write names separated by commas, backticks optional, or `nothing`)",
            "A.md:15: `fetch` may import `nothing` and other modules at once",
            "A.md:16: `two words` is not a module name (one identifier, backticks optional)",
            "A.md:17: `serve` may import `model` twice",
        ]
    );
    assert_eq!(
        messages(
            "## Boundaries\n| module | may import |\n|---|---|\n| model | nothing | extra |\n"
        ),
        ["A.md:4: a row needs 2 cells, this one has 3: `| model | nothing | extra |`"]
    );
}
