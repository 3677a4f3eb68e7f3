//! Plain-text tables for admin CLI answers a person reads row by row.

use serde_json::Value;

/// Widest a cell gets; longer texts end in `…`.
const MAX_CELL: usize = 60;
const HEADER: [&str; 12] = [
    "TIME (UTC)",
    "DECISION",
    "KIND",
    "USER",
    "DEVICE",
    "SOURCE",
    "DESTINATION",
    "APPLICATION",
    "POLICY",
    "REASON",
    "EDGE",
    "REFERENCE",
];

/// The `GET /admin/v1/decisions` answer as a table, then `next page: --before <cursor>` when
/// there are more.
pub(super) fn decisions(answer: &Value) -> String {
    let rows: Vec<[String; 12]> = answer["decisions"]
        .as_array()
        .map(|list| list.iter().map(decision_row).collect())
        .unwrap_or_default();
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no decisions\n");
    } else {
        let mut widths = HEADER.map(|h| h.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        push_row(&mut out, &HEADER.map(str::to_owned), &widths);
        for row in &rows {
            push_row(&mut out, row, &widths);
        }
    }
    if let Some(cursor) = answer["next_cursor"].as_str() {
        out.push_str(&format!("next page: --before {cursor}\n"));
    }
    out
}

fn decision_row(d: &Value) -> [String; 12] {
    let text = |key: &str| cell(d[key].as_str().unwrap_or("-"));
    let user = d["email"]
        .as_str()
        .or_else(|| d["user_id"].as_str())
        .unwrap_or("-");
    [
        d["at_ms"].as_u64().map_or_else(|| "-".to_owned(), utc),
        text("decision"),
        text("kind"),
        cell(user),
        text("device_id"),
        text("source_ip"),
        text("destination"),
        text("application"),
        text("policy"),
        text("reason"),
        text("edge"),
        text("reference"),
    ]
}

fn push_row(out: &mut String, row: &[String; 12], widths: &[usize; 12]) {
    let mut line = String::new();
    for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// A printable cell: control characters (terminal escapes) become `?`, long texts are cut.
fn cell(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_CELL)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_CELL {
        out.pop();
        out.push('…');
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` (UTC, proleptic Gregorian).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day): H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(utc(1_767_600_000_123), "2026-01-05 08:00:00.123");
    }

    #[test]
    fn a_page_prints_aligned_rows_and_the_next_cursor() {
        let answer = json!({
            "decisions": [
                { "at_ms": 1_767_600_000_123u64, "decision": "deny", "kind": "http",
                  "email": "ada@corp.example", "device_id": "dev_1", "source_ip": "100.64.0.2",
                  "destination": "wiki.corp.example/\u{1b}[2J", "application": "wiki",
                  "policy": null, "reason": "no policy allows this request", "edge": "fra1",
                  "reference": "00c0ffee00c0ffee" },
                { "at_ms": 1_767_600_000_000u64, "decision": "allow", "kind": "flow",
                  "user_id": "usr_2", "source_ip": "100.64.0.3",
                  "destination": "10.1.2.3:5432/tcp", "reason": "allowed", "edge": "fra1" }
            ],
            "next_cursor": "1767600000000-2"
        });
        let text = decisions(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("TIME (UTC)               DECISION"),
            "{text}"
        );
        assert!(lines[1].contains("ada@corp.example"), "{text}");
        assert!(lines[1].contains("wiki.corp.example/?[2J"), "{text}");
        assert!(lines[2].contains("usr_2"), "{text}");
        let column = lines[0].find("DESTINATION").unwrap();
        assert_eq!(lines[2].find("10.1.2.3:5432/tcp"), Some(column), "{text}");
        assert_eq!(lines[3], "next page: --before 1767600000000-2");
    }

    #[test]
    fn an_empty_page_says_so() {
        assert_eq!(
            decisions(&json!({ "decisions": [], "next_cursor": null })),
            "no decisions\n"
        );
    }
}
