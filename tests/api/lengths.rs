//! No production function is longer than 80 lines, and no source file holds more than
//! 650 lines of production code (ARCHITECTURE.md, "Invariants"). A long function does
//! several things under one name; a long file is usually several concerns, and the
//! next reader has to find the one they need. This reads the sources of every crate
//! (`crates/*/src`; tests, examples and benches are not production code), with comments,
//! strings and characters blanked out and the items marked `#[cfg(test)]` left out
//! (the code-only filter of `structure.rs`), so braces in literals or comments count
//! for nothing.
//!
//! A function is measured from the line of its `fn` to the line of its closing brace;
//! a file by its lines outside its `#[cfg(test)]` items (its unit tests sit beside the
//! code they test and make no second concern).

use std::path::{Path, PathBuf};

use super::structure::{code_only, collect, matching_brace, test_items, without_tests};

/// The longest a production function may be, in lines.
const MAX_FUNCTION_LINES: usize = 80;
/// The most production lines a source file may hold.
const MAX_FILE_LINES: usize = 650;

#[test]
fn no_production_function_or_file_is_too_long() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    crates.sort();
    assert!(crates.len() >= 7, "{crates:?}");
    let mut files = Vec::new();
    for src in &crates {
        collect(src, &mut files);
    }
    let mut report = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        report.extend(offenders(&shown, &text));
    }
    assert!(
        report.is_empty(),
        "too long (split a function into named steps, a file by concern):\n{}",
        report.join("\n")
    );
}

/// The check itself, on made-up sources: it measures real functions only (not one in a
/// test module, a declaration without a body or a function pointer type), braces in
/// strings, comments and characters count for nothing, and the limits are inclusive.
#[test]
fn the_check_measures_code_only() {
    let body = |n: usize| "    let _ = 1;\n".repeat(n);
    // 81 lines: one over
    let long = format!(
        "fn long() {{\n    let _ = \"}}}}\"; // }}\n    let _ = '}}'; /* {{ */\n{}}}\n",
        body(77)
    );
    // 80 lines: at the limit
    let fits = format!(
        "pub async fn fits<T>(x: T) -> Option<T>\nwhere\n    T: Clone,\n{{\n{}    Some(x)\n}}\n",
        body(74)
    );
    let source = format!(
        "trait T {{\n    fn declared(&self);\n}}\ntype P = fn(u8) -> u8;\n{long}{fits}\
         #[cfg(test)]\nmod tests {{\n    fn in_tests() {{\n{}    }}\n}}\n",
        body(100)
    );
    let found = long_functions(&without_tests(&code_only(&source)));
    assert_eq!(found, vec![(5, "long".to_owned(), 81)], "{found:?}");
    // the test module is not counted: 4 + 81 + 80 lines, and the mark's line
    assert_eq!(production_lines(&source), 4 + 81 + 80);
    let report = offenders("made-up.rs", &source);
    assert_eq!(report, vec!["made-up.rs:5: fn long is 81 lines"]);
    let big = format!("{}fn f() {{}}\n", "const A: u8 = 1;\n".repeat(650));
    assert_eq!(
        offenders("big.rs", &big),
        vec!["big.rs: 651 lines of production code"]
    );
}

/// What is too long in the source `text` of the file shown as `shown`.
fn offenders(shown: &str, text: &str) -> Vec<String> {
    let mut report = Vec::new();
    let lines = production_lines(text);
    if lines > MAX_FILE_LINES {
        report.push(format!("{shown}: {lines} lines of production code"));
    }
    for (line, name, length) in long_functions(&without_tests(&code_only(text))) {
        report.push(format!("{shown}:{line}: fn {name} is {length} lines"));
    }
    report
}

/// The lines of `text` outside its `#[cfg(test)]` items (from the line of the mark
/// through the line of the item's end).
fn production_lines(text: &str) -> usize {
    let code = code_only(text);
    let chars: Vec<char> = code.chars().collect();
    let line_of = |i: usize| chars[..i].iter().filter(|&&c| c == '\n').count();
    let test_lines: usize = test_items(&code)
        .into_iter()
        .map(|span| line_of(span.end.max(span.start + 1) - 1) - line_of(span.start) + 1)
        .sum();
    text.lines().count() - test_lines
}

/// Every function of `code` (comments, literals and test items blanked) longer than the
/// limit: (line of its `fn`, name, lines).
fn long_functions(code: &str) -> Vec<(usize, String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\n' {
            line += 1;
        }
        let word = chars[i..].starts_with(&['f', 'n'])
            && (i == 0 || !is_ident(chars[i - 1]))
            && chars.get(i + 2).is_some_and(|c| c.is_whitespace());
        if !word {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        let name_start = j;
        while chars.get(j).is_some_and(|&c| is_ident(c)) {
            j += 1;
        }
        if j == name_start || chars[name_start].is_numeric() {
            i += 2;
            continue;
        }
        let name: String = chars[name_start..j].iter().collect();
        if let Some(open) = body_start(&chars, j) {
            let close = matching_brace(&chars, open);
            let length = chars[i..close.min(chars.len())]
                .iter()
                .filter(|&&c| c == '\n')
                .count()
                + 1;
            if length > MAX_FUNCTION_LINES {
                found.push((line, name, length));
            }
        }
        // nested functions are measured too: go on inside the body
        i = j;
    }
    found
}

/// The `{` of the body of the function whose signature goes on at `i`; `None` for a
/// declaration (`fn f();`).
fn body_start(chars: &[char], mut i: usize) -> Option<usize> {
    let mut depth = 0i32;
    while i < chars.len() {
        match chars[i] {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '{' if depth == 0 => return Some(i),
            ';' if depth == 0 => return None,
            _ => {}
        }
        i += 1;
    }
    None
}
