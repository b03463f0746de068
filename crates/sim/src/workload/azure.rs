//! The Azure LLM inference trace (Azure Public Dataset,
//! AzureLLMInferenceTrace 2023, CC BY 4.0): one request per line,
//! `TIMESTAMP,ContextTokens,GeneratedTokens`.
//!
//! Requests become *service demand over time*: the trace is cut into
//! windows of `window_s` (300 s); a window's tokens (context + generated)
//! per second, divided by what one accelerator serves (`tokens_per_gpu_s`,
//! 2,000), rounded up, is the number of one-GPU replicas a service job
//! submitted at the window's start runs for the window. Windows without
//! requests submit nothing. The services are latency-sensitive (20 ms
//! circle by default) and carry no input data.

use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

use super::{fields, Loaded, Qos, Raw};
use crate::error::SimError;

pub fn parse(
    file: &str,
    text: &str,
    window_s: f64,
    tokens_per_gpu_s: f64,
) -> Result<Loaded, SimError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines
        .next()
        .ok_or_else(|| SimError::line(file, 1, "empty file: expected a header"))?;
    if header.trim() != "TIMESTAMP,ContextTokens,GeneratedTokens" {
        return Err(SimError::line(
            file,
            1,
            "the header must be TIMESTAMP,ContextTokens,GeneratedTokens",
        ));
    }
    // (window, tokens, first line of the window)
    let mut windows: Vec<(u64, u64, usize)> = Vec::new();
    let mut first_ms: Option<i64> = None;
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let cells = fields(file, line, text)?;
        if cells.len() != 3 {
            return Err(SimError::line(
                file,
                line,
                format!("{} fields, expected 3", cells.len()),
            ));
        }
        let at = timestamp_ms(cells[0]).ok_or_else(|| {
            SimError::line(
                file,
                line,
                format!(
                    "TIMESTAMP: {:?} is not YYYY-MM-DD HH:MM:SS[.fraction]",
                    cells[0]
                ),
            )
        })?;
        let first = *first_ms.get_or_insert(at);
        if at < first {
            return Err(SimError::line(
                file,
                line,
                "TIMESTAMP: before the first request",
            ));
        }
        let tokens = |k: usize, name: &str| super::whole(file, line, name, cells[k], 0, 10_000_000);
        let total = tokens(1, "ContextTokens")? + tokens(2, "GeneratedTokens")?;
        let window = ((at - first) as f64 / 1_000.0 / window_s) as u64;
        match windows.last_mut() {
            Some((w, t, _)) if *w == window => *t += total,
            Some((w, _, _)) if *w > window => {
                return Err(SimError::line(file, line, "TIMESTAMP: out of order"))
            }
            _ => windows.push((window, total, line)),
        }
    }
    let mut loaded = Loaded::default();
    for (window, tokens, line) in windows {
        let rate = tokens as f64 / window_s;
        let replicas = ((rate / tokens_per_gpu_s).ceil() as u64).clamp(1, 100_000);
        let mut raw = Raw::new(line, window as f64 * window_s, JobKind::Service, Kind::Gpu);
        raw.tasks = replicas;
        raw.units = 1;
        raw.duration_s = window_s;
        raw.qos = Qos::Latency;
        raw.data_gb = Some(0.0);
        loaded.raws.push(raw);
    }
    Ok(loaded)
}

/// `2023-11-16 18:15:46.6805900` (UTC, as the trace writes it) in ms.
fn timestamp_ms(text: &str) -> Option<i64> {
    if text.len() > 40 {
        return None;
    }
    let at: jiff::Timestamp = format!("{}Z", text.replacen(' ', "T", 1)).parse().ok()?;
    Some(at.as_millisecond())
}
