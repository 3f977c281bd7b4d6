//! SECURITY.md lists every checklist item with the tests that prove it. This
//! test keeps that list true: every item A1–H36 and each later item in
//! `LATER` has a row, every test a row names exists, and each of those tests
//! still carries a `// SECURITY <item>` comment naming the item.

use std::collections::BTreeSet;
use std::path::Path;

const ITEMS: &str = "AAAAABBBBCCCCCCCCCCDDDEEEEEFFFFGGGGH";

/// Items past H36 that are already proven; the checklist numbers them on.
const LATER: &[&str] = &[
    "I37", "I38", "I39", "I40", "I41", "I42", "I43", "I44", "I45", "J46", "J47", "J48", "J49",
    "J50", "J51", "J52", "J53", "J54", "J55", "K56", "K57",
];

fn expected_items() -> Vec<String> {
    ITEMS
        .chars()
        .enumerate()
        .map(|(i, c)| format!("{c}{}", i + 1))
        .chain(LATER.iter().map(|id| id.to_string()))
        .collect()
}

/// Item ids in a `SECURITY ...` tag: "C10 / A3", "D20, D21, D22", "F28 / G35".
fn tagged_ids(line: &str) -> Vec<String> {
    let Some(rest) = line.split("SECURITY ").nth(1) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    let mut letter = None;
    for token in rest.split([' ', ',', '/']).filter(|t| !t.is_empty()) {
        let token = token.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        let (l, digits) = match token.chars().next() {
            Some(c @ 'A'..='K') => (Some(c), &token[1..]),
            _ => (letter, token),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || l.is_none() {
            break;
        }
        letter = l;
        ids.push(format!("{}{digits}", l.unwrap()));
    }
    ids
}

#[test]
fn every_security_item_is_proven_by_a_named_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let mut seen = BTreeSet::new();
    for row in doc
        .lines()
        .filter(|l| l.starts_with("| ") && l.ends_with(" |"))
    {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let [id, _promise, tests] = cells[..] else {
            continue;
        };
        if !expected_items().contains(&id.to_owned()) {
            continue;
        }
        seen.insert(id.to_owned());
        let named: Vec<&str> = tests.split(", ").map(|t| t.trim_matches('`')).collect();
        assert!(
            !named.is_empty() && !named[0].is_empty(),
            "{id}: no test listed"
        );
        for t in named {
            let (file, func) = t
                .rsplit_once("::")
                .unwrap_or_else(|| panic!("{id}: bad entry {t}"));
            let src = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|_| panic!("{id}: {file} does not exist"));
            let lines: Vec<&str> = src.lines().collect();
            let at = lines
                .iter()
                .position(|l| {
                    l.contains(&format!("fn {func}(")) || l.contains(&format!("fn {func}<"))
                })
                .unwrap_or_else(|| panic!("{id}: no fn {func} in {file}"));
            let tagged = lines[at.saturating_sub(12)..at]
                .iter()
                .any(|l| tagged_ids(l).contains(&id.to_owned()));
            assert!(tagged, "{id}: {file}::{func} no longer names SECURITY {id}");
        }
    }
    let missing: Vec<_> = expected_items()
        .into_iter()
        .filter(|i| !seen.contains(i))
        .collect();
    assert!(missing.is_empty(), "SECURITY.md has no row for {missing:?}");
}

#[test]
fn tags_parse() {
    assert_eq!(tagged_ids("// SECURITY C10 / A3: x"), ["C10", "A3"]);
    assert_eq!(
        tagged_ids("// SECURITY D20, D21, D22: x"),
        ["D20", "D21", "D22"]
    );
    assert_eq!(
        tagged_ids("// SECURITY G32, G33, F28, G35)."),
        ["G32", "G33", "F28", "G35"]
    );
    assert_eq!(tagged_ids("// SECURITY B8: no"), ["B8"]);
    assert_eq!(tagged_ids("// SECURITY J51, J52: x"), ["J51", "J52"]);
}
