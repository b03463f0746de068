//! The `suanwang` binary end to end: files in a temporary directory, exit
//! codes, and the text scripts and people read; and (in `server`) the
//! control plane through real HTTP on SQLite and PostgreSQL.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

mod agent;
mod meter;
mod server;
mod up;
mod work;

/// A fresh directory under the system temporary directory, removed on drop.
/// Commands run inside it, so file names in messages are relative and stable.
struct Dir {
    path: PathBuf,
}

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("suanwang-cli-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        Dir { path }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text)
            .unwrap_or_else(|error| panic!("cannot write {name}: {error}"));
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_else(|error| panic!("cannot read {name}: {error}"))
    }

    /// Runs `suanwang <args>` in this directory.
    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_suanwang"))
            .args(args)
            .current_dir(&self.path)
            .output()
            .unwrap_or_else(|error| panic!("cannot run suanwang {args:?}: {error}"));
        Run {
            args: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[derive(Debug)]
struct Run {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails the test, showing both streams, unless the exit code is `code`.
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "suanwang {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A tiny fixed round: two regions, three pools, four classes, with one
/// class that waits for lack of a pool (latency) and one outbid.
const TINY: &str = r#"{
  "format": "suanwang.placement/v1",
  "regions": [{"id": "guian", "name": "Gui'an", "lat": 26.45, "lon": 106.45},
              {"id": "shanghai", "name": "Shanghai", "lat": 31.23, "lon": 121.47}],
  "latency_ms": [[1, 25], [25, 1]],
  "transfer_yuan_per_gb": [[0, 0.2], [0.2, 0]],
  "carbon_yuan_per_kg": 0.1,
  "pools": [
    {"id": "guian-01/gpu-ascend", "site": "guian-01", "region": "guian", "kind": "gpu",
     "family": "ascend", "capacity": 16, "price_yuan_per_unit_hour": 5, "power_kw_per_unit": 0.4,
     "pue": 1.2, "grid_kg_co2_per_kwh": 0.35},
    {"id": "guian-01/cpu-x86", "site": "guian-01", "region": "guian", "kind": "cpu",
     "family": "x86", "capacity": 10, "price_yuan_per_unit_hour": 1, "power_kw_per_unit": 0,
     "pue": 1, "grid_kg_co2_per_kwh": 0},
    {"id": "shanghai-01/cpu-x86", "site": "shanghai-01", "region": "shanghai", "kind": "cpu",
     "family": "x86", "capacity": 4, "price_yuan_per_unit_hour": 2, "power_kw_per_unit": 0,
     "pue": 1, "grid_kg_co2_per_kwh": 0}
  ],
  "classes": [
    {"id": "train", "tenant": "t1", "kind": "gpu", "families": ["ascend"], "count": 2, "units": 8,
     "hours": 24, "bid_yuan_per_unit_hour": 9, "origin": "shanghai", "max_latency_ms": null,
     "data_region": "shanghai", "data_gb": 48, "allowed_regions": null, "gang": true},
    {"id": "web", "tenant": "t2", "kind": "cpu", "families": [], "count": 3, "units": 2,
     "hours": 1, "bid_yuan_per_unit_hour": 10, "origin": "guian", "max_latency_ms": null,
     "data_region": "guian", "data_gb": 0, "allowed_regions": null, "gang": false},
    {"id": "batch", "tenant": "t3", "kind": "cpu", "families": [], "count": 1, "units": 5,
     "hours": 1, "bid_yuan_per_unit_hour": 3, "origin": "guian", "max_latency_ms": null,
     "data_region": "guian", "data_gb": 0, "allowed_regions": ["guian"], "gang": false},
    {"id": "trade", "tenant": "t4", "kind": "cpu", "families": [], "count": 1, "units": 1,
     "hours": 1, "bid_yuan_per_unit_hour": 30, "origin": "shanghai", "max_latency_ms": 0.5,
     "data_region": "shanghai", "data_gb": 0, "allowed_regions": null, "gang": false}
  ]
}"#;

/// `place gen` then `place solve`: the round used by several tests.
fn generated(dir: &Dir) {
    dir.run(&[
        "place",
        "gen",
        "--pools",
        "60",
        "--classes",
        "300",
        "--seed",
        "7",
        "-o",
        "p.json",
    ])
    .expect(0);
    assert!(!dir.file("p.json.tmp").exists(), "temporary file left");
}

fn stats_line(stdout: &str) -> Value {
    let line = stdout.lines().next().expect("a stats line");
    serde_json::from_str(line).unwrap_or_else(|error| panic!("stats line {line:?}: {error}"))
}

fn number(stats: &Value, field: &str) -> f64 {
    stats[field]
        .as_f64()
        .unwrap_or_else(|| panic!("stats field {field} is not a number: {stats}"))
}

#[test]
fn gen_solve_check_explain() {
    let dir = Dir::new("round");
    generated(&dir);
    let solve = dir
        .run(&["place", "solve", "p.json", "-o", "s.json", "--stats"])
        .expect(0);
    assert_eq!(solve.stdout.lines().count(), 1, "{}", solve.stdout);
    let stats = stats_line(&solve.stdout);
    assert_eq!(stats["policy"], "market");
    let welfare = number(&stats, "welfare");
    let bound = number(&stats, "bound");
    let ratio = number(&stats, "ratio");
    assert!(welfare > 0.0 && bound >= welfare, "{stats}");
    assert!((ratio - welfare / bound).abs() < 1e-12, "{stats}");
    let placed = stats["placed_tasks"].as_u64().expect("placed_tasks");
    let total = stats["total_tasks"].as_u64().expect("total_tasks");
    assert!(placed > 0 && placed <= total, "{stats}");
    assert!(number(&stats, "seconds") >= 0.0, "{stats}");
    // Linux reports peak memory; elsewhere it is null.
    let memory = &stats["peak_memory_bytes"];
    assert!(
        memory.as_u64().is_some_and(|bytes| bytes > 0)
            || (memory.is_null() && !cfg!(target_os = "linux")),
        "{stats}"
    );
    assert_eq!(stats["pools"], 60);
    assert_eq!(stats["classes"], 300);

    let check = dir.run(&["place", "check", "p.json", "s.json"]).expect(0);
    assert!(
        check.stdout.starts_with("feasible: 0 violations\n"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains(&format!("placed {placed} of {total} tasks")),
        "{}",
        check.stdout
    );

    let check_json = dir
        .run(&["place", "check", "p.json", "s.json", "--output", "json"])
        .expect(0);
    let report: Value = serde_json::from_str(check_json.stdout.trim()).expect("check json");
    assert_eq!(report["feasible"], true);
    assert_eq!(report["welfare"], stats["welfare"]);
    assert_eq!(report["bound"], stats["bound"]);

    let problem: Value = serde_json::from_str(&dir.read("p.json")).expect("problem json");
    let class_id = problem["classes"][17]["id"]
        .as_str()
        .expect("class id")
        .to_owned();
    let explain = dir
        .run(&["place", "explain", "p.json", "s.json", "--class", &class_id])
        .expect(0);
    assert!(
        explain.stdout.contains(&format!(" {class_id}: ")),
        "{}",
        explain.stdout
    );
    assert!(explain.stdout.contains("candidates:"), "{}", explain.stdout);

    // Without --class: every class not fully placed, or a line saying none.
    let all = dir.run(&["place", "explain", "p.json", "s.json"]).expect(0);
    assert!(!all.stdout.is_empty());
}

#[test]
fn solve_is_deterministic_and_stable() {
    let dir = Dir::new("determinism");
    generated(&dir);
    dir.run(&["place", "solve", "p.json", "-o", "s1.json"])
        .expect(0);
    dir.run(&["place", "solve", "p.json", "-o", "s2.json"])
        .expect(0);
    let first = dir.read("s1.json");
    assert_eq!(first, dir.read("s2.json"), "two runs differ");
    // To standard output, the same bytes; --stats goes to standard error then.
    let to_stdout = dir.run(&["place", "solve", "p.json", "--stats"]).expect(0);
    assert_eq!(to_stdout.stdout, first);
    let stats = stats_line(&to_stdout.stderr);
    assert!(number(&stats, "welfare") > 0.0);
    // Re-solving with the solution as the previous round keeps it.
    dir.run(&[
        "place",
        "solve",
        "p.json",
        "--previous",
        "s1.json",
        "-o",
        "s3.json",
    ])
    .expect(0);
    assert_eq!(first, dir.read("s3.json"), "--previous moved work");
    // The generator is deterministic too.
    dir.run(&[
        "place",
        "gen",
        "--pools",
        "60",
        "--classes",
        "300",
        "--seed",
        "7",
        "-o",
        "p2.json",
    ])
    .expect(0);
    assert_eq!(dir.read("p.json"), dir.read("p2.json"));
}

#[test]
fn greedy_policy() {
    let dir = Dir::new("greedy");
    generated(&dir);
    let solve = dir
        .run(&[
            "place", "solve", "p.json", "--policy", "greedy", "-o", "g.json", "--stats",
        ])
        .expect(0);
    let stats = stats_line(&solve.stdout);
    assert_eq!(stats["policy"], "greedy");
    assert_eq!(stats["bids"], 0);
    let check = dir.run(&["place", "check", "p.json", "g.json"]).expect(0);
    assert!(check.stdout.starts_with("feasible"), "{}", check.stdout);
    // Greedy has no prices: all zero.
    let solution: Value = serde_json::from_str(&dir.read("g.json")).expect("solution json");
    let prices = solution["prices"].as_object().expect("prices");
    assert_eq!(prices.len(), 60);
    assert!(
        prices.values().all(|price| price.as_f64() == Some(0.0)),
        "{prices:?}"
    );

    let market = dir
        .run(&["place", "solve", "p.json", "-o", "m.json", "--stats"])
        .expect(0);
    let market = stats_line(&market.stdout);
    assert!(
        number(&market, "welfare") >= number(&stats, "welfare"),
        "market {market} below greedy {stats}"
    );
}

#[test]
fn check_rejects_over_capacity() {
    let dir = Dir::new("over-capacity");
    dir.write("p.json", TINY);
    // 6 web tasks x 2 units in a pool of 10.
    dir.write(
        "s.json",
        r#"{"format": "suanwang.placement-solution/v1",
            "assignments": [{"class": "web", "pool": "guian-01/cpu-x86", "count": 3},
                            {"class": "batch", "pool": "guian-01/cpu-x86", "count": 1}],
            "prices": {}}"#,
    );
    let check = dir.run(&["place", "check", "p.json", "s.json"]).expect(1);
    insta::assert_snapshot!(check.stdout);
}

#[test]
fn check_text_of_a_solved_round() {
    let dir = Dir::new("check-text");
    dir.write("p.json", TINY);
    dir.run(&["place", "solve", "p.json", "-o", "s.json"])
        .expect(0);
    let check = dir.run(&["place", "check", "p.json", "s.json"]).expect(0);
    insta::assert_snapshot!(check.stdout);
}

#[test]
fn explain_text_of_a_solved_round() {
    let dir = Dir::new("explain-text");
    dir.write("p.json", TINY);
    dir.run(&["place", "solve", "p.json", "-o", "s.json"])
        .expect(0);
    let waiting = dir.run(&["place", "explain", "p.json", "s.json"]).expect(0);
    insta::assert_snapshot!("explain_waiting", waiting.stdout);
    let placed = dir
        .run(&["place", "explain", "p.json", "s.json", "--class", "train"])
        .expect(0);
    insta::assert_snapshot!("explain_train", placed.stdout);
}

#[test]
fn bad_problem_names_the_json_path() {
    let dir = Dir::new("bad-problem");
    dir.write(
        "p.json",
        &TINY.replacen(r#""region": "guian""#, r#""region": "mars""#, 1),
    );
    let solve = dir
        .run(&["place", "solve", "p.json", "-o", "s.json"])
        .expect(2);
    assert!(
        solve.stderr.contains("$.pools[0].region"),
        "{}",
        solve.stderr
    );
    assert!(
        !dir.file("s.json").exists(),
        "nothing is written on bad input"
    );
    insta::assert_snapshot!(solve.stderr);

    // Not JSON at all, and a missing file: exit 2 too.
    dir.write("broken.json", "{\"format\": ");
    let broken = dir.run(&["place", "solve", "broken.json"]).expect(2);
    assert!(broken.stderr.contains("broken.json"), "{}", broken.stderr);
    let missing = dir.run(&["place", "solve", "missing.json"]).expect(2);
    assert!(
        missing.stderr.contains("missing.json"),
        "{}",
        missing.stderr
    );
}

#[test]
fn bad_solution_names_the_json_path() {
    let dir = Dir::new("bad-solution");
    dir.write("p.json", TINY);
    dir.write(
        "s.json",
        r#"{"format": "suanwang.placement-solution/v1",
            "assignments": [{"class": "web", "pool": "nowhere", "count": 1}], "prices": {}}"#,
    );
    let check = dir.run(&["place", "check", "p.json", "s.json"]).expect(2);
    assert!(
        check.stderr.contains("$.assignments[0].pool"),
        "{}",
        check.stderr
    );
    insta::assert_snapshot!(check.stderr);
}

#[test]
fn explain_unknown_class() {
    let dir = Dir::new("explain-unknown");
    dir.write("p.json", TINY);
    dir.run(&["place", "solve", "p.json", "-o", "s.json"])
        .expect(0);
    let explain = dir
        .run(&["place", "explain", "p.json", "s.json", "--class", "nope"])
        .expect(2);
    assert!(explain.stderr.contains("'nope'"), "{}", explain.stderr);
    assert!(explain.stdout.is_empty(), "{}", explain.stdout);
    insta::assert_snapshot!(explain.stderr);
}

#[test]
fn demo() {
    let dir = Dir::new("demo");
    let demo = dir.run(&["place", "demo"]).expect(0);
    assert!(demo.stdout.contains("market"), "{}", demo.stdout);
    assert!(demo.stdout.contains("greedy"), "{}", demo.stdout);
    assert!(demo.stdout.contains("Why work waits"), "{}", demo.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new("usage");
    let unknown = dir.run(&["place", "frobnicate"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    let missing_argument = dir.run(&["place", "check", "p.json"]);
    assert_eq!(missing_argument.code, Some(2), "{missing_argument:?}");
}
