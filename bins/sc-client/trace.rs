//! `--trace FILE.svg`: the session's handshake as a sequence diagram.
//!
//! A self-contained SVG (text, lines and arrowheads; no script, no external
//! font or image) that any browser shows: the flights of SPEC §4.1 as
//! arrows between client and server, each with its handshake messages in
//! the order they were processed, its size on the wire and when it was sent
//! or received; the order of steps 7–10, the cipher and the peer. Written
//! by hand with `format!`, every text escaped for XML.
//!
//! Also compiled into the demo (`examples/demo.rs`), which writes
//! `handshake.svg`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use sc_handshake::Level;
use sc_session::trace::{FlightLabel, HandshakeTrace, TraceFlight};
use sc_session::{Connector, SessionConfig, SessionInfo, Side};
use sc_wire::HandshakeType;

const WIDTH: u32 = 960;
const CLIENT_X: u32 = 170;
const SERVER_X: u32 = 790;
const LINE: u32 = 17;

/// `connector`, recording its handshakes ([`SessionConfig::trace`]).
pub(crate) fn traced(connector: Connector) -> Connector {
    let session = SessionConfig {
        trace: true,
        ..connector.session_config().clone()
    };
    connector.with_session_config(session)
}

/// Writes the diagram of the handshake `info` describes (made with
/// [`traced`]) to `path`; the error is one line naming the file.
pub(crate) fn save(path: &Path, info: &SessionInfo, peer: &str) -> Result<(), String> {
    let trace = info
        .handshake_trace()
        .ok_or_else(|| "the session recorded no handshake trace".to_owned())?;
    std::fs::write(path, render(trace, info, peer))
        .map_err(|e| format!("cannot write the trace {}: {e}", path.display()))
}

/// The diagram of `trace` (recorded by one side of the session `info`
/// describes); `peer` names the other end for a person (for example
/// `demo.server at 127.0.0.1:7000`).
pub(crate) fn render(trace: &HandshakeTrace, info: &SessionInfo, peer: &str) -> String {
    let flights = trace.flights();
    let order = info.step_order();
    let order_text = order
        .steps()
        .iter()
        .map(|t| t.step().to_string())
        .collect::<Vec<_>>()
        .join(" → ");

    let mut body = String::new();
    let mut y = 150;
    let (mut c2s, mut s2c) = (0usize, 0usize);
    for flight in &flights {
        match flight.from {
            Side::Client => c2s += flight.wire_len(),
            Side::Server => s2c += flight.wire_len(),
        }
        y = draw_flight(&mut body, flight, y, &order_text);
    }
    let total = info.handshake_duration();
    y += 10;
    let _ = writeln!(
        body,
        r#"<text x="{x}" y="{y}" text-anchor="middle" class="done">handshake complete after {t} ({side} clock) · {c2s} bytes client → server, {s2c} bytes server → client</text>"#,
        x = WIDTH / 2,
        t = ms(total),
        side = side_name(trace.side()),
        c2s = thousands(c2s),
        s2c = thousands(s2c),
    );
    let height = y + 30;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">
<title>Sovereign-Chain handshake with {peer}</title>
<defs>
<marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker>
<style>
.step {{ fill: #111; }}
.retry {{ fill: #8a4b00; }}
.data {{ fill: #555; font-style: italic; }}
.label {{ font-weight: bold; fill: #1f4e79; }}
.meta {{ fill: #444; font-size: 12px; }}
.note {{ fill: #7a1f5c; font-size: 12px; }}
.done {{ fill: #1b5e20; font-weight: bold; }}
</style>
</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{mid}" y="28" text-anchor="middle" font-size="18" font-weight="bold">Sovereign-Chain handshake: 13 steps in 6 flights</text>
<text x="{mid}" y="50" text-anchor="middle" class="meta">peer {peer} · protocol {version} · cipher {suite} · steps 7–10 in the order {order_text} (one of 24)</text>
<text x="{mid}" y="68" text-anchor="middle" class="meta">recorded by the {side}; times from the start of the handshake, sizes on the wire (record headers and tags included)</text>
<rect x="{cbox}" y="84" width="140" height="30" rx="4" fill="#e8f0fb" stroke="#1f4e79"/>
<text x="{CLIENT_X}" y="104" text-anchor="middle" font-weight="bold">Client</text>
<rect x="{sbox}" y="84" width="140" height="30" rx="4" fill="#e8f0fb" stroke="#1f4e79"/>
<text x="{SERVER_X}" y="104" text-anchor="middle" font-weight="bold">Server</text>
<line x1="{CLIENT_X}" y1="114" x2="{CLIENT_X}" y2="{life}" stroke="#888" stroke-dasharray="4 4"/>
<line x1="{SERVER_X}" y1="114" x2="{SERVER_X}" y2="{life}" stroke="#888" stroke-dasharray="4 4"/>"##,
        mid = WIDTH / 2,
        peer = xml(peer),
        version = xml(&info.version().to_string()),
        suite = xml(&info.cipher().to_string()),
        order_text = xml(&order_text),
        side = side_name(trace.side()),
        cbox = CLIENT_X - 70,
        sbox = SERVER_X - 70,
        life = height - 40,
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// One flight: its label, an arrow, and its messages under it. Returns the
/// `y` of the next flight.
fn draw_flight(out: &mut String, flight: &TraceFlight<'_>, y: u32, order: &str) -> u32 {
    let (x1, x2) = match flight.from {
        Side::Client => (CLIENT_X, SERVER_X),
        Side::Server => (SERVER_X, CLIENT_X),
    };
    let label = match flight.label {
        FlightLabel::Numbered(n) => format!("Flight {n}"),
        FlightLabel::Retry => "Cookie retry (SPEC §4.5)".to_owned(),
    };
    let dir = match flight.from {
        Side::Client => "client → server",
        Side::Server => "server → client",
    };
    let at = flight.at().map_or_else(
        || "time not recorded".to_owned(),
        |t| format!("at {}", ms(t)),
    );
    let records = flight.records.len();
    let _ = writeln!(
        out,
        r#"<g class="flight" data-flight="{n}" data-bytes="{bytes}"><text x="{mid}" y="{y}" text-anchor="middle" class="label">{label} · {dir} · {bytes_text} bytes in {records} record{s} · {at}</text>"#,
        n = match flight.label {
            FlightLabel::Numbered(n) => n.to_string(),
            FlightLabel::Retry => "retry".to_owned(),
        },
        mid = WIDTH / 2,
        bytes = flight.wire_len(),
        label = xml(&label),
        bytes_text = thousands(flight.wire_len()),
        s = if records == 1 { "" } else { "s" },
        at = xml(&at),
    );
    let arrow_y = y + 10;
    let dash = if flight.label == FlightLabel::Retry {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    };
    let _ = writeln!(
        out,
        r##"<line x1="{x1}" y1="{arrow_y}" x2="{x2}" y2="{end_y}" stroke="#222" stroke-width="1.6" marker-end="url(#head)"{dash}/>"##,
        end_y = arrow_y + 18,
    );
    let mut line_y = arrow_y + 18 + LINE + 2;
    for record in flight.records {
        let protection = match record.level {
            Level::Plaintext => "plaintext record",
            Level::Handshake => "sealed, handshake keys",
            Level::Application => "sealed, application keys",
        };
        if record.is_application_data() {
            let _ = writeln!(
                out,
                r#"<text x="{mid}" y="{line_y}" text-anchor="middle" class="data">application data ({} bytes, {protection})</text>"#,
                thousands(record.wire_len),
                mid = WIDTH / 2,
            );
            line_y += LINE;
            continue;
        }
        let names: Vec<String> = record.messages.iter().map(|t| step_text(*t)).collect();
        let _ = writeln!(
            out,
            r#"<text x="{mid}" y="{line_y}" text-anchor="middle" class="meta">[{protection}, {} bytes]</text>"#,
            thousands(record.wire_len),
            mid = WIDTH / 2,
        );
        line_y += LINE;
        for (t, name) in record.messages.iter().zip(names) {
            let class = if t.step() > 13 { "retry" } else { "step" };
            let _ = writeln!(
                out,
                r#"<text x="{mid}" y="{line_y}" text-anchor="middle" class="{class}" data-step="{step}">{name}</text>"#,
                mid = WIDTH / 2,
                step = t.step(),
                name = xml(&name),
            );
            line_y += LINE;
        }
    }
    let sevens: Vec<u8> = flight
        .messages()
        .map(HandshakeType::step)
        .filter(|s| (7..=10).contains(s))
        .collect();
    if !sevens.is_empty() {
        let mine = sevens
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(" and ");
        let _ = writeln!(
            out,
            r#"<text x="{mid}" y="{line_y}" text-anchor="middle" class="note">{mine} in this session's order of steps 7–10: {order}</text>"#,
            mid = WIDTH / 2,
            order = xml(order),
        );
        line_y += LINE;
    }
    out.push_str("</g>\n");
    line_y + 14
}

/// `7 KeyExchange1`; the retry messages by name and type.
fn step_text(t: HandshakeType) -> String {
    let name = t.name().unwrap_or("unknown message");
    if t.step() <= 13 {
        format!("{} {name}", t.step())
    } else {
        format!("{name} (0x{:02x}, not a step)", t.step())
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `1,266`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `text` with XML's five special characters escaped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_separates() {
        assert_eq!(
            xml(r#"<a & "b" 'c'>"#),
            "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;"
        );
        assert_eq!(thousands(6114), "6,114");
        assert_eq!(thousands(59), "59");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
