//! `suanwang work`: demo workloads that do real compute. `work render`
//! writes one PNG frame of a fractal flythrough (crate `suanwang-work`); a
//! film is a batch job with one task per frame (`examples/render.toml`), and
//! the agent tells each task its frame (`SUANWANG_TASK_INDEX`) and where
//! results go (`SUANWANG_OUTPUT_DIR`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use suanwang_work::{RenderSpec, WorkError};

use crate::exit;

#[derive(Debug, Subcommand)]
pub enum WorkCommand {
    /// Render one frame of a Mandelbrot flythrough to DIR/frame-NNNNN.png
    /// (deterministic: the same frame gives the same bytes anywhere).
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Frame to render, 0-based (less than --frames); a task of a batch job
    /// gets its index from the agent.
    #[arg(long, value_name = "N", env = "SUANWANG_TASK_INDEX")]
    frame: u32,
    /// Directory to write the frame into (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        env = "SUANWANG_OUTPUT_DIR",
        default_value = "."
    )]
    out: PathBuf,
    /// Image width in pixels (1 to 4096).
    #[arg(long, value_name = "W", default_value_t = suanwang_work::DEFAULT_WIDTH)]
    width: u32,
    /// Image height in pixels (1 to 4096).
    #[arg(long, value_name = "H", default_value_t = suanwang_work::DEFAULT_HEIGHT)]
    height: u32,
    /// Frames in the whole film (1 to 100000): the camera path is spread
    /// over them.
    #[arg(long, value_name = "TOTAL", default_value_t = suanwang_work::DEFAULT_FRAMES)]
    frames: u32,
    /// Iterations per pixel (1 to 100000); default: from 1000 to 3250,
    /// deeper frames more.
    #[arg(long, value_name = "N")]
    iterations: Option<u32>,
}

pub fn run(command: WorkCommand) -> Result<u8> {
    match command {
        WorkCommand::Render(args) => render(args),
    }
}

fn render(args: RenderArgs) -> Result<u8> {
    let spec = RenderSpec {
        width: args.width,
        height: args.height,
        frame: args.frame,
        frames: args.frames,
        iterations: args.iterations,
    };
    // Check before creating anything: bad input writes nothing.
    spec.validate().map_err(flag_error)?;
    let bytes = suanwang_work::render_png(&spec).map_err(flag_error)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create {}", args.out.display()))?;
    let path = args.out.join(format!("frame-{:05}.png", spec.frame));
    write_atomically(&path, &bytes)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", path.display())?;
    Ok(exit::OK)
}

/// Names the flag to blame: `--width: must be 1 to 4096 pixels, not 0`.
fn flag_error(error: WorkError) -> anyhow::Error {
    match error {
        WorkError::Invalid { field, message } => anyhow!("--{field}: {message}"),
        other => anyhow!(other),
    }
}

/// Writes a temporary file beside `path`, flushes it to disk and renames
/// it: a reader (or a retried attempt of the same task) never sees half a
/// frame. The temporary name carries the process id, so two attempts that
/// overlap do not write into one file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .context("an output file name")?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
