//! The one-screen summary: scenario x cell -> pass/fail, with rows whose
//! verdict differs between cells flagged as compiler-dependent.
use crate::report::RunReport;
use crate::verdict::Verdict;
use std::collections::BTreeMap;

fn v_token(v: &Verdict) -> String {
    format!("({})", v.token())
}

pub struct Matrix {
    pub cells: Vec<String>,
    /// Rows keep insertion order.
    rows: Vec<String>,
    cells_of: BTreeMap<(String, String), String>,
    /// (row, cell) -> whether the test passed (what "differs" compares).
    verdicts: BTreeMap<(String, String), bool>,
    /// (row, cell) -> failed exactly as a known kernel bug says.
    known: BTreeMap<(String, String), bool>,
}

impl Matrix {
    pub fn new(cells: Vec<String>) -> Matrix {
        Matrix { cells, rows: Vec::new(), cells_of: BTreeMap::new(), verdicts: BTreeMap::new(), known: BTreeMap::new() }
    }

    pub fn record(&mut self, row: &str, cell: &str, outcome: std::result::Result<&RunReport, &str>) {
        let (text, ok, known) = match outcome {
            Ok(r) => match (&r.verdict, &r.known) {
                (Verdict::Pass, _) => ("pass".to_string(), true, false),
                (Verdict::Fail { .. }, crate::known::Known::Failed(..)) => {
                    (format!("KNOWN {}", v_token(&r.verdict)), false, true)
                }
                (Verdict::Fail { .. }, _) => (format!("FAIL {}", v_token(&r.verdict)), false, false),
            },
            Err(_) => ("ERROR".to_string(), false, false),
        };
        self.record_text(row, cell, text, ok);
        self.known.insert((row.to_string(), cell.to_string()), known);
    }

    /// Record a cell's text directly (e.g. "FLAKY 19/20" for repeated runs).
    pub fn record_text(&mut self, row: &str, cell: &str, text: String, ok: bool) {
        if !self.rows.iter().any(|r| r == row) {
            self.rows.push(row.to_string());
        }
        self.cells_of.insert((row.to_string(), cell.to_string()), text);
        self.verdicts.insert((row.to_string(), cell.to_string()), ok);
    }

    fn is_known(&self, key: &(String, String)) -> bool {
        self.known.get(key).copied().unwrap_or(false)
    }

    /// Rows whose verdict is not the same on every cell that ran them.
    pub fn compiler_dependent(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|row| {
                let v: Vec<bool> = self
                    .cells
                    .iter()
                    .filter_map(|c| self.verdicts.get(&((*row).clone(), c.clone())).copied())
                    .collect();
                v.iter().any(|x| *x) && v.iter().any(|x| !*x)
            })
            .map(String::as_str)
            .collect()
    }

    /// Every test passed, or failed exactly as a known kernel bug says.
    pub fn all_passed(&self) -> bool {
        self.verdicts.iter().all(|(k, v)| *v || self.is_known(k))
    }

    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|r| r.len()).max().unwrap_or(8).max(8);
        let col = |s: &str| format!("{s:<22}");
        let mut out = format!("{:<width$}  {}\n", "scenario", self.cells.iter().map(|c| col(c)).collect::<String>());
        let differs = self.compiler_dependent();
        for row in &self.rows {
            let cells: String = self
                .cells
                .iter()
                .map(|c| col(self.cells_of.get(&(row.clone(), c.clone())).map(String::as_str).unwrap_or("-")))
                .collect();
            let flag =
                if differs.contains(&row.as_str()) { "  <- differs between cells: compiler-dependent" } else { "" };
            out.push_str(&format!("{row:<width$}  {}{flag}\n", cells.trim_end()));
        }
        let passed = self.verdicts.values().filter(|v| **v).count();
        out.push_str(&format!("{passed}/{} passed", self.verdicts.len()));
        let known = self.known.values().filter(|k| **k).count();
        if known > 0 {
            out.push_str(&format!("; {known} known kernel bug(s) (tests/known-failures.toml)"));
        }
        if !differs.is_empty() {
            out.push_str(&format!("; {} compiler-dependent difference(s)", differs.len()));
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_rows_that_differ_between_cells() {
        let mut m = Matrix::new(vec!["gcc".into(), "llvm".into()]);
        m.record("a", "gcc", Err("x"));
        m.record("a", "llvm", Err("x"));
        assert!(m.compiler_dependent().is_empty());
        m.verdicts.insert(("a".into(), "gcc".into()), true);
        assert_eq!(m.compiler_dependent(), vec!["a"]);
        assert!(m.render().contains("compiler-dependent"));
        assert!(!m.all_passed());
    }
}
