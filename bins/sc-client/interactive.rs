//! Interactive mode: every input line is one message, every message received
//! is printed as `server: <text>`.
//!
//! Input is read on its own thread (blocking reads, and rustyline's editor
//! on a terminal) and handed to the session over a channel; received
//! messages are printed by a task as they come. On a terminal they go
//! through rustyline's external printer, which prints above the `msg> `
//! prompt without garbling the line being typed.
//!
//! At the end of input the client sends its authenticated Close and prints
//! the server's remaining replies until the server closes too, or until
//! [`QUIET`] passes without one (at most [`LINGER`] in all).

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use sc_net::Stream;
use sc_session::{Error as SessionError, ReadHalf};
use sc_tunnel::connect::session_error_sentence;
use sc_tunnel::Target;
use sovereign_chain::cli::CliError;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// The prompt on a terminal.
const PROMPT: &str = "msg> ";

/// After the end of input: how long to wait for the next reply before giving
/// up on the server's Close.
const QUIET: Duration = Duration::from_secs(5);

/// After the end of input: the longest wait for the server's Close in all.
const LINGER: Duration = Duration::from_secs(30);
/// A KeepAlive record this often, so a session waiting at the prompt is not
/// ended by the server's idle timeout (sc-server's default: 300 s).
const KEEPALIVE: Duration = Duration::from_secs(60);

/// What the input thread hands over.
enum Input {
    /// One line, without its line ending.
    Line(Vec<u8>),
    /// A line longer than the maximum message (not sent).
    TooLong { line: u64, len: usize },
    /// Reading the input failed.
    Failed(String),
}

/// How the receiving side ended.
enum End {
    /// The server's authenticated Close.
    Closed,
    /// No reply for [`QUIET`] after the end of input.
    Quiet,
}

/// Where received messages and status lines go.
enum Output {
    /// Above the prompt, on a terminal.
    Printer(Box<dyn ExternalPrinter + Send>),
    /// Standard output (messages) and standard error (status); `escape`
    /// when standard output is a terminal.
    Plain { escape: bool },
}

impl Output {
    fn message(&mut self, msg: &[u8]) {
        let text = String::from_utf8_lossy(msg);
        match self {
            Self::Printer(p) => {
                let _ = p.print(format!("server: {}\n", escape_controls(&text)));
            }
            Self::Plain { escape } => {
                let mut out = io::stdout().lock();
                let _ = if *escape {
                    writeln!(out, "server: {}", escape_controls(&text))
                } else {
                    writeln!(out, "server: {text}")
                };
                let _ = out.flush();
            }
        }
    }

    fn status(&mut self, text: &str) {
        match self {
            Self::Printer(p) => {
                let _ = p.print(format!("{text}\n"));
            }
            Self::Plain { .. } => eprintln!("{text}"),
        }
    }
}

/// Shows control characters (a terminal escape sequence from the peer) as
/// escapes, keeping line feeds and tabs.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

type Shared = Arc<Mutex<Output>>;

fn with_output(out: &Shared, f: impl FnOnce(&mut Output)) {
    let mut guard = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard);
}

/// Runs an interactive session with `target`; with `trace`, its handshake's
/// sequence diagram is written there (SVG) once the session is up.
pub(crate) async fn run(
    mut target: Target,
    max_message: usize,
    trace: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    if trace.is_some() {
        target.connector = crate::trace::traced(target.connector);
    }
    let stream = target.connect().await?;
    eprintln!(
        "connected to {} (cipher {}, protocol {}, steps 7-10: {}, handshake {:.1} ms)",
        target.server_name.to_str(),
        stream.cipher(),
        stream.version(),
        stream.step_order(),
        stream.handshake_duration().as_secs_f64() * 1e3
    );
    if let Some(path) = &trace {
        let peer = format!("{} at {}", stream.peer(), target.connect);
        crate::trace::save(path, stream.info(), &peer).map_err(CliError::new)?;
        eprintln!("handshake diagram written to {}", path.display());
    }
    let (reader, mut writer) = stream.into_split();

    let (tx, mut rx) = mpsc::channel::<Input>(16);
    let (output, prompt) = if io::stdin().is_terminal() {
        let mut editor = DefaultEditor::new()
            .map_err(|e| CliError::new(format!("cannot use the terminal: {e}")))?;
        // No printer where the terminal cannot take one (TERM=dumb, or
        // standard output redirected): then messages go to standard output
        // between the prompt's lines.
        let output = match editor.create_external_printer() {
            Ok(printer) => Output::Printer(Box::new(printer)),
            Err(_) => Output::Plain {
                escape: io::stdout().is_terminal(),
            },
        };
        let thread = std::thread::Builder::new()
            .name("prompt".into())
            .spawn(move || prompt_loop(editor, &tx, max_message))
            .map_err(|e| CliError::new(format!("cannot start the prompt: {e}")))?;
        (output, Some(thread))
    } else {
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || stdin_loop(&tx, max_message))
            .map_err(|e| CliError::new(format!("cannot read the input: {e}")))?;
        (
            Output::Plain {
                escape: io::stdout().is_terminal(),
            },
            None,
        )
    };
    let output: Shared = Arc::new(Mutex::new(output));

    let (closing, closing_rx) = watch::channel(false);
    let mut receiver = tokio::spawn(receive(reader, output.clone(), closing_rx));

    let mut input_failed = false;
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    enum Next {
        InputEnded,
        ServerEnded(Result<End, SessionError>),
        SendFailed(SessionError),
    }
    let next = loop {
        tokio::select! {
            input = rx.recv() => match input {
                Some(Input::Line(line)) => {
                    if let Err(e) = writer.send_message(&line).await {
                        break Next::SendFailed(e);
                    }
                }
                Some(Input::TooLong { line, len }) => {
                    input_failed = true;
                    with_output(&output, |o| o.status(&format!(
                        "error: line {line} not sent: {len} bytes, more than the maximum message \
                         of {max_message} bytes (--max-message)"
                    )));
                }
                Some(Input::Failed(why)) => {
                    input_failed = true;
                    with_output(&output, |o| o.status(&format!("error: cannot read the input: {why}")));
                    break Next::InputEnded;
                }
                None => break Next::InputEnded,
            },
            done = &mut receiver => break Next::ServerEnded(joined(done)),
            _ = keepalive.tick() => {
                if let Err(e) = writer.send_keepalive().await {
                    break Next::SendFailed(e);
                }
            }
        }
    };
    // The input thread stops at its next line once nobody listens.
    drop(rx);

    let result = match next {
        Next::InputEnded => {
            let _ = closing.send(true);
            let closed = writer.shutdown().await;
            match tokio::time::timeout(LINGER, &mut receiver).await {
                Ok(done) => match joined(done) {
                    Ok(End::Closed) => Ok(()),
                    Ok(End::Quiet) => {
                        with_output(&output, |o| {
                            o.status(&format!(
                                "note: no reply and no close from the server within {} s \
                                 of the end of input",
                                QUIET.as_secs()
                            ))
                        });
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(_) => {
                    receiver.abort();
                    with_output(&output, |o| {
                        o.status(&format!(
                            "note: the server did not close the session within {} s \
                             of the end of input",
                            LINGER.as_secs()
                        ))
                    });
                    closed.map_err(SessionError::from)
                }
            }
        }
        Next::ServerEnded(ended) => {
            if ended.is_ok() {
                // Our own Close in answer; best effort.
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
            }
            if prompt.is_some() {
                let text = match &ended {
                    Ok(_) => "the server closed the session; press Enter to exit".to_owned(),
                    Err(e) => format!(
                        "the session ended: {}; press Enter to exit",
                        session_error_sentence(e)
                    ),
                };
                with_output(&output, |o| o.status(&text));
            } else if ended.is_ok() {
                with_output(&output, |o| o.status("the server closed the session"));
            }
            ended.map(|_| ())
        }
        Next::SendFailed(e) => {
            // The reading side usually knows better why the session ended.
            match tokio::time::timeout(Duration::from_secs(1), &mut receiver).await {
                Ok(done) => match joined(done) {
                    Err(reason) => Err(reason),
                    Ok(_) => Err(e),
                },
                Err(_) => {
                    receiver.abort();
                    Err(e)
                }
            }
        }
    };

    if let Some(thread) = prompt {
        // Wait for the editor to give the terminal back.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    match result {
        Ok(()) if input_failed => Ok(ExitCode::FAILURE),
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(CliError::new(session_error_sentence(&e))),
    }
}

fn joined(
    done: Result<Result<End, SessionError>, tokio::task::JoinError>,
) -> Result<End, SessionError> {
    match done {
        Ok(r) => r,
        Err(_) => Err(SessionError::Internal("the receiving task failed")),
    }
}

/// Prints every message until the server's Close; once `closing` is set
/// (the end of input), gives up after [`QUIET`] without a message.
async fn receive(
    mut reader: ReadHalf<Stream>,
    output: Shared,
    mut closing: watch::Receiver<bool>,
) -> Result<End, SessionError> {
    let mut ending = false;
    loop {
        let msg = if ending {
            match tokio::time::timeout(QUIET, reader.recv_message()).await {
                Ok(msg) => msg?,
                Err(_) => return Ok(End::Quiet),
            }
        } else {
            tokio::select! {
                msg = reader.recv_message() => msg?,
                changed = closing.changed() => {
                    ending = changed.is_err() || *closing.borrow();
                    continue;
                }
            }
        };
        match msg {
            Some(m) => with_output(&output, |o| o.message(&m)),
            None => return Ok(End::Closed),
        }
    }
}

/// A terminal: the `msg> ` prompt with line editing and history.
fn prompt_loop(mut editor: DefaultEditor, tx: &mpsc::Sender<Input>, max: usize) {
    let mut n = 0u64;
    loop {
        let input = match editor.readline(PROMPT) {
            Ok(line) => {
                n += 1;
                if line.len() > max {
                    Input::TooLong {
                        line: n,
                        len: line.len(),
                    }
                } else {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Input::Line(line.into_bytes())
                }
            }
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return,
            Err(e) => Input::Failed(e.to_string()),
        };
        let stop = matches!(input, Input::Failed(_));
        if tx.blocking_send(input).is_err() || stop {
            return;
        }
    }
}

/// Not a terminal: lines until the end of input.
fn stdin_loop(tx: &mpsc::Sender<Input>, max: usize) {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut n = 0u64;
    loop {
        let next = match read_line(&mut input, max) {
            Ok(None) => return,
            Ok(Some(Line::Text(bytes))) => Input::Line(bytes),
            Ok(Some(Line::TooLong(len))) => Input::TooLong { line: n + 1, len },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Input::Failed(e.to_string()),
        };
        n += 1;
        let stop = matches!(next, Input::Failed(_));
        if tx.blocking_send(next).is_err() || stop {
            return;
        }
    }
}

/// One line read by [`read_line`].
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line without `\n` or `\r\n`.
    Text(Vec<u8>),
    /// A line of this many bytes, over the maximum; its bytes were not kept.
    TooLong(usize),
}

/// Reads one line of at most `max` bytes (without its ending), holding no
/// more than `max + 1` bytes of a longer one; `None` at the end of input.
fn read_line(r: &mut impl BufRead, max: usize) -> io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut len = 0usize;
    let mut overflow = false;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(any.then(|| finish(line, len, overflow, max)));
        }
        any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        len = len.saturating_add(chunk.len());
        if !overflow && line.len() + chunk.len() <= max.saturating_add(1) {
            line.extend_from_slice(chunk);
        } else {
            overflow = true;
            line = Vec::new();
        }
        let used = chunk.len() + usize::from(newline.is_some());
        r.consume(used);
        if newline.is_some() {
            return Ok(Some(finish(line, len, overflow, max)));
        }
    }
}

fn finish(mut line: Vec<u8>, mut len: usize, overflow: bool, max: usize) -> Line {
    if !overflow && line.last() == Some(&b'\r') {
        line.pop();
        len -= 1;
    }
    if overflow || len > max {
        Line::TooLong(len)
    } else {
        Line::Text(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        while let Some(l) = read_line(&mut r, max).expect("in memory") {
            out.push(l);
        }
        out
    }

    #[test]
    fn lines_split_and_bounded() {
        let text = |s: &str| Line::Text(s.as_bytes().to_vec());
        assert_eq!(
            lines(b"hello\n\nwin\r\nlast", 8),
            vec![text("hello"), text(""), text("win"), text("last")]
        );
        assert_eq!(
            lines(b"123456789\n12345678\r\n", 8),
            vec![Line::TooLong(9), text("12345678")]
        );
        assert_eq!(lines(b"", 8), vec![]);
        assert_eq!(lines(b"\n", 8), vec![text("")]);
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("a\u{1b}[2Jb\tc\n"), "a\\u{1b}[2Jb\tc\n");
    }
}
