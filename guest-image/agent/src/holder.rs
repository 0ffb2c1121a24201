//! A child process that attaches a fixture and holds the link, so the
//! "holder exits" and "holder is killed" release paths run for real: the
//! kernel closes the link fd in exit_files(), nobody calls close().
//!
//! The child is the agent binary itself (`/init attach-helper …`), not a
//! fork of the multi-threaded PID 1.
use crate::bpf::{self, AttachError};
use hidvm_proto::Stage;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

pub const HELPER_ARG: &str = "attach-helper";

pub struct HeldLink {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Start a child that loads `path` for `hid_id` and attaches it. Returns
/// once the child reported the link id (or the attach error).
/// `sysfs`: the device's directory, whose report descriptor the program's
/// probe (if any) runs on before the attach.
pub fn spawn(
    path: &str,
    hid_id: u32,
    flags: u32,
    map: Option<&str>,
    sysfs: Option<&std::path::Path>,
) -> Result<(HeldLink, u32), AttachError> {
    let err = |m: String| AttachError { stage: Stage::Attach, message: m, errno: None, log: vec![] };
    let mut child = Command::new("/proc/self/exe")
        .args([HELPER_ARG, path, &hid_id.to_string(), &flags.to_string(), map.unwrap_or("-")])
        .arg(sysfs.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("starting the holder process: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let parsed = BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading from the holder: {e}"))
        .and_then(|_| {
            serde_json::from_str::<serde_json::Value>(&line).map_err(|e| format!("holder said `{}`: {e}", line.trim()))
        });
    let v = match parsed {
        Ok(v) => v,
        Err(m) => {
            // Never leave a holder (and the link it may hold) behind.
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(m));
        }
    };
    if let Some(id) = v.get("link_id").and_then(|i| i.as_u64()) {
        let stdin = child.stdin.take();
        return Ok((HeldLink { child, stdin }, id as u32));
    }
    let _ = child.kill();
    let _ = child.wait();
    let e = &v["error"];
    Err(AttachError {
        stage: e["stage"].as_str().and_then(|s| Stage::parse(s).ok()).unwrap_or(Stage::Attach),
        message: e["message"].as_str().unwrap_or("holder failed").to_string(),
        errno: e["errno"].as_i64().map(|n| n as i32),
        log: e["log"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
            .unwrap_or_default(),
    })
}

impl HeldLink {
    /// Ask the child to exit normally (it does not close the link first).
    pub fn exit(mut self) -> Result<String, String> {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"exit\n");
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Ok(format!("holder pid {} exited: {status}", self.child.id()))
    }

    /// SIGKILL the child.
    pub fn kill(mut self) -> Result<String, String> {
        self.child.kill().map_err(|e| e.to_string())?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Ok(format!("holder pid {} killed: {status}", self.child.id()))
    }
}

impl Drop for HeldLink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side: `attach-helper <path> <hid_id> <flags> <map|-> <sysfs|->`.
pub fn helper_main(args: &[String]) -> ! {
    let parsed = match args {
        [p, h, f, m, d] => h.parse::<u32>().ok().zip(f.parse::<u32>().ok()).map(|(hid_id, flags)| {
            (
                p.as_str(),
                hid_id,
                flags,
                (m != "-").then_some(m.as_str()),
                (d != "-").then(|| std::path::PathBuf::from(d)),
            )
        }),
        _ => None,
    };
    let Some((path, hid_id, flags, map, sysfs)) = parsed else {
        println!(
            "{}",
            serde_json::json!({ "error": { "stage": "attach", "message": format!("bad helper arguments {args:?}") } })
        );
        std::process::exit(2);
    };
    bpf::install_logger();
    let result = bpf::load(path, hid_id, flags, map).and_then(|(mut obj, name)| {
        bpf::probe_device(&obj, hid_id, sysfs.as_deref())?;
        let (link, id) = bpf::attach(&mut obj, &name)?;
        Ok((obj, link, id))
    });
    let mut out = std::io::stdout();
    match result {
        Ok((_obj, _link, id)) => {
            let _ = writeln!(out, "{}", serde_json::json!({ "link_id": id }));
            let _ = out.flush();
            // Hold the link until told to exit or stdin closes; then exit
            // without dropping anything: the kernel closes the fds.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            std::process::exit(0);
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({ "error": { "stage": e.stage.name(), "message": e.message, "errno": e.errno, "log": e.log } })
            );
            std::process::exit(1);
        }
    }
}
