//! `suanwang work render`: one PNG frame, the same bytes every time, its
//! frame and output directory from the agent's environment, and bad flags
//! named with exit code 2.

use std::process::Command;

use crate::Dir;

/// Runs `suanwang work render <args>` in `dir` with `env` set (and the
/// agent's variables cleared unless given).
fn render(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> crate::Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_suanwang"));
    command
        .args(["work", "render"])
        .args(args)
        .current_dir(&dir.path)
        .env_remove("SUANWANG_TASK_INDEX")
        .env_remove("SUANWANG_OUTPUT_DIR");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("runs suanwang");
    crate::Run {
        args: format!("work render {}", args.join(" ")),
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn decode(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buffer).expect("a PNG image");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height)
}

#[test]
fn work_render_writes_one_deterministic_frame() {
    let dir = Dir::new("work-render");
    let small = ["--width", "80", "--height", "48", "--frames", "240"];

    // Flags: the path is printed, the file decodes at the requested size.
    let mut args = small.to_vec();
    args.extend(["--frame", "7", "--out", "a"]);
    let run = render(&dir, &args, &[]).expect(0);
    assert_eq!(run.stdout, "a/frame-00007.png\n");
    let first = std::fs::read(dir.file("a/frame-00007.png")).expect("the frame");
    assert_eq!(decode(&first), (80, 48));
    let left: Vec<_> = std::fs::read_dir(dir.file("a"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");

    // The agent's environment: same frame, same bytes; another frame differs.
    let run = render(
        &dir,
        &small,
        &[("SUANWANG_TASK_INDEX", "7"), ("SUANWANG_OUTPUT_DIR", "b")],
    )
    .expect(0);
    assert_eq!(run.stdout, "b/frame-00007.png\n");
    assert_eq!(first, std::fs::read(dir.file("b/frame-00007.png")).unwrap());
    render(&dir, &small, &[("SUANWANG_TASK_INDEX", "8")]).expect(0);
    let other = std::fs::read(dir.file("frame-00008.png")).expect("frame 8 in .");
    assert_ne!(first, other);

    // Bad input names the flag, exits 2 and writes nothing.
    for (flag, value) in [
        ("--width", "0"),
        ("--width", "4097"),
        ("--height", "5000"),
        ("--frames", "100001"),
        ("--iterations", "100001"),
    ] {
        let run = render(&dir, &["--frame", "0", flag, value, "--out", "bad"], &[]).expect(2);
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
    let run = render(&dir, &["--frame", "240", "--out", "bad"], &[]).expect(2);
    assert!(run.stderr.contains("--frame:"), "{}", run.stderr);
    let run = render(&dir, &["--frame", "x", "--out", "bad"], &[]).expect(2);
    assert!(run.stderr.contains("--frame"), "{}", run.stderr);
    // No frame at all: neither the flag nor the agent's variable.
    let run = render(&dir, &["--out", "bad"], &[]).expect(2);
    assert!(run.stderr.contains("--frame"), "{}", run.stderr);
    assert!(!dir.file("bad").exists(), "nothing written on bad input");
}
