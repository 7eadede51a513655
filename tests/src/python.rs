//! Python scripts run with the kazoo venv made by `scripts/setup`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// How much of a child's stderr is kept for error messages.
const STDERR_KEEP: usize = 64 * 1024;

/// The venv's interpreter: `$KAZOO_VENV/bin/python`, else `<workspace>/.venv/bin/python`.
///
/// # Errors
/// Fails, saying to run `scripts/setup`, when that interpreter does not exist.
pub fn venv_python() -> anyhow::Result<PathBuf> {
    let python = python_in(std::env::var_os("KAZOO_VENV").map(PathBuf::from));
    if !python.is_file() {
        bail!(
            "kazoo venv python not found at {}: run scripts/setup (or set KAZOO_VENV)",
            python.display()
        );
    }
    Ok(python)
}

fn python_in(venv: Option<PathBuf>) -> PathBuf {
    let venv = venv.unwrap_or_else(|| workspace_root().join(".venv"));
    venv.join("bin").join("python")
}

/// The workspace root, the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A file of this crate's `python/` directory, e.g. `python_script("kazoo_queue.py")`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A Python invocation under the venv, built up before [`run`](Python::run) or
/// [`spawn`](Python::spawn).
#[derive(Debug)]
pub struct Python {
    command: Command,
}

impl Python {
    /// Runs Python source given inline (`python -c`); arguments become `sys.argv[1:]`.
    ///
    /// # Errors
    /// Fails, saying to run `scripts/setup`, when the venv is missing.
    pub fn source(script: &str) -> anyhow::Result<Python> {
        Python::new(|command| {
            command.arg("-c").arg(script);
        })
    }

    /// Runs a script file, such as one found with [`python_script`].
    ///
    /// # Errors
    /// Fails when the venv or the file is missing.
    pub fn file(path: impl AsRef<Path>) -> anyhow::Result<Python> {
        let path = path.as_ref();
        if !path.is_file() {
            bail!("python script {} not found", path.display());
        }
        Python::new(|command| {
            command.arg(path);
        })
    }

    fn new(script: impl FnOnce(&mut Command)) -> anyhow::Result<Python> {
        let mut command = Command::new(venv_python()?);
        script(&mut command);
        // Lines must reach the test as they are printed, not when a buffer fills.
        command.env("PYTHONUNBUFFERED", "1").kill_on_drop(true);
        Ok(Python { command })
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets an environment variable of the child only.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Runs to completion and returns stdout.
    ///
    /// # Errors
    /// Fails when the script exits non-zero; the error carries its stderr.
    ///
    /// # Cancellation safety
    /// Dropping the future kills the interpreter.
    pub async fn run(mut self) -> anyhow::Result<String> {
        let output = self
            .command
            .stdin(Stdio::null())
            .output()
            .await
            .context("failed to run python")?;
        if !output.status.success() {
            bail!(
                "python script exited with {}; stderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8(output.stdout).context("python printed invalid utf-8")
    }

    /// Starts a long-running child with stdin and stdout piped for line-oriented talk;
    /// stderr is collected in the background.
    ///
    /// # Errors
    /// Fails when the interpreter cannot start.
    pub fn spawn(mut self) -> anyhow::Result<LineChild> {
        LineChild::spawn(std::mem::replace(&mut self.command, Command::new("true")))
    }
}

/// Runs the Python source `script` with `args` (its `sys.argv[1:]`) and returns its stdout.
///
/// # Errors
/// Fails when the venv is missing or the script exits non-zero; the error carries stderr.
///
/// # Cancellation safety
/// Dropping the future kills the interpreter.
pub async fn run_python(script: &str, args: &[&str]) -> anyhow::Result<String> {
    Python::source(script)?.args(args).run().await
}

/// Starts the Python source `script` with `args` as a long-running child.
///
/// # Errors
/// Fails when the venv is missing or the interpreter cannot start.
pub fn spawn_python(script: &str, args: &[&str]) -> anyhow::Result<LineChild> {
    Python::source(script)?.args(args).spawn()
}

/// Keeps the tail of a child's stderr, read continuously so a chatty child never blocks
/// on a full pipe.
async fn drain(mut pipe: ChildStderr, sink: Arc<Mutex<String>>) {
    let mut buf = vec![0; 4096];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_str(&String::from_utf8_lossy(&buf[..n]));
        if kept.len() > STDERR_KEEP {
            let cut = kept.len() - STDERR_KEEP;
            let cut = (cut..kept.len())
                .find(|&i| kept.is_char_boundary(i))
                .unwrap_or(0);
            kept.drain(..cut);
        }
    }
}

/// A child process spoken to by lines (a kazoo script, a zk-actor); killed when dropped.
#[derive(Debug)]
pub struct LineChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    stderr_task: JoinHandle<()>,
}

impl LineChild {
    /// Starts `command` with stdin and stdout piped for line-oriented talk; stderr is
    /// collected in the background. The child is killed when this is dropped.
    ///
    /// # Errors
    /// Fails when the program cannot start.
    pub fn spawn(mut command: Command) -> anyhow::Result<LineChild> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {:?}", command.as_std().get_program()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout not piped")?;
        let stderr_pipe = child.stderr.take().context("child stderr not piped")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = tokio::spawn(drain(stderr_pipe, Arc::clone(&stderr)));
        Ok(LineChild {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            stderr,
            stderr_task,
        })
    }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT, SIGKILL) to the child.
    ///
    /// # Errors
    /// Fails when the child has exited or the signal cannot be sent.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self.id().context("the child has exited")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("failed to send {signal} to {pid}"))
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next line of stdout without its newline; `None` at end of stream.
    ///
    /// # Errors
    /// Fails when stdout cannot be read.
    ///
    /// # Cancellation safety
    /// Cancel safe: no line is lost when the future is dropped.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        self.stdout
            .next_line()
            .await
            .context("failed to read child stdout")
    }

    /// The next line of stdout, which must come within `timeout`.
    ///
    /// # Errors
    /// Fails, with the child's stderr, on timeout or when stdout ends.
    pub async fn expect_line(&mut self, what: &str, timeout: Duration) -> anyhow::Result<String> {
        match tokio::time::timeout(timeout, self.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => bail!(
                "child stdout ended while waiting for {what}; stderr:\n{}",
                self.stderr()
            ),
            Ok(Err(err)) => Err(err),
            Err(_) => bail!(
                "timed out after {timeout:?} waiting for {what} from the child; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Writes `line` and a newline to the child's stdin.
    ///
    /// # Errors
    /// Fails when stdin was closed or the child has exited.
    pub async fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("child stdin is closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin
            .flush()
            .await
            .context("failed to write to child stdin")
    }

    /// Closes stdin, which a script reading it sees as end of input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// What the child printed on stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits for the child to exit.
    ///
    /// # Errors
    /// Fails when the child cannot be waited for.
    pub async fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .await
            .context("failed to wait for the child")?;
        // What it wrote last may still be in the pipe: read to its end (bounded, since a
        // process it started may hold the pipe open), so `stderr` has its last words.
        if !self.stderr_task.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.stderr_task).await;
        }
        Ok(status)
    }

    /// Kills the child with SIGKILL and waits for it.
    ///
    /// # Errors
    /// Fails when the child cannot be killed.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("failed to kill the child")
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        self.stderr_task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_path_prefers_the_override() {
        assert_eq!(
            python_in(Some(PathBuf::from("/opt/venv"))),
            Path::new("/opt/venv/bin/python")
        );
        assert!(python_in(None).ends_with(".venv/bin/python"));
    }
}
