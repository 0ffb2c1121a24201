//! A minimal QMP client: enough to ask a hung guest for diagnostics
//! (chardev-send-break for serial sysrq) before the VM is killed.
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path) -> std::io::Result<Qmp> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut qmp = Qmp { reader: BufReader::new(stream.try_clone()?), writer: stream };
        qmp.read_reply()?; // greeting
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    pub fn execute(&mut self, command: &str, arguments: Value) -> std::io::Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        self.read_reply()
    }

    /// The next line that is not an asynchronous event.
    fn read_reply(&mut self) -> std::io::Result<Value> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "QMP closed"));
            }
            let v: Value =
                serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if v.get("event").is_none() {
                if let Some(err) = v.get("error") {
                    return Err(std::io::Error::other(format!("QMP error: {err}")));
                }
                return Ok(v);
            }
        }
    }
}
