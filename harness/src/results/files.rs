//! Every results file a command can write, from one set of records:
//! `--json`, `--ktap`, `--junit`, `--html`.
use crate::base::error::Result;
use crate::results::records::Results;
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub json: Option<PathBuf>,
    pub ktap: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

impl Outputs {
    pub fn any(&self) -> bool {
        self.json.is_some() || self.ktap.is_some() || self.junit.is_some() || self.html.is_some()
    }

    /// Write each file asked for; `targets` are the run's target labels
    /// (the HTML report lists a planned target without results);
    /// `baseline` the kernel other kernels' rows are held against.
    pub fn write(&self, results: &Results, targets: &[String], baseline: Option<&str>) -> Result<()> {
        if let Some(p) = &self.json {
            results.write_json(p)?;
        }
        if let Some(p) = &self.ktap {
            crate::results::ktap::write(results, p)?;
        }
        if let Some(p) = &self.junit {
            crate::results::junit::write(results, p)?;
        }
        if let Some(p) = &self.html {
            crate::results::html::write_report(results, p, targets, baseline)?;
        }
        Ok(())
    }
}
