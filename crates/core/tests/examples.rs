//! Every job file in `examples/` parses as a `JobSpec` (unknown fields are
//! errors) and passes validation against the built-in national topology;
//! and each says what its comments promise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use suanwang_api::JobSpec;
use suanwang_core::spec::{validate_job, JobDef, JobKind};
use suanwang_core::topology::Topology;
use suanwang_place::Kind;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Every `examples/*.toml`, by file stem, parsed and validated.
fn examples() -> BTreeMap<String, (JobSpec, JobDef)> {
    let topology = Topology::national();
    let mut found = BTreeMap::new();
    let entries = std::fs::read_dir(examples_dir()).expect("examples/ is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let spec: JobSpec = toml::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not a job file: {error}", path.display()));
        let def = validate_job(&spec, &topology)
            .unwrap_or_else(|error| panic!("{} is invalid: {error:?}", path.display()));
        let stem = path.file_stem().expect("a name").to_string_lossy();
        found.insert(stem.into_owned(), (spec, def));
    }
    found
}

fn example<'a>(all: &'a BTreeMap<String, (JobSpec, JobDef)>, name: &str) -> &'a (JobSpec, JobDef) {
    all.get(name)
        .unwrap_or_else(|| panic!("examples/{name}.toml is missing"))
}

#[test]
fn every_example_is_valid() {
    let all = examples();
    for name in [
        "hello",
        "render",
        "inference",
        "training",
        "hpc",
        "analytics",
    ] {
        example(&all, name);
    }
}

#[test]
fn render_is_a_cheap_film() {
    let all = examples();
    let (spec, def) = example(&all, "render");
    assert_eq!(def.kind, JobKind::Batch);
    assert_eq!(def.tasks, 24, "a one-second film at 24 frames per second");
    assert_eq!(def.resource_kind, Kind::Cpu);
    assert_eq!(def.units, 1);
    assert!(def.families.is_empty() && def.allowed_regions.is_none());
    assert!(def.latency_ms_max.is_none());
    assert!(spec.bid_yuan_per_unit_hour <= 0.1, "a low bid");
    assert_eq!(spec.run.command, "suanwang");
    // The film's length on the command line matches the task count.
    let frames = spec.run.args.iter().position(|arg| arg == "--frames");
    let frames = frames.map(|i| spec.run.args[i + 1].parse::<u64>().unwrap());
    assert_eq!(spec.run.args[..2], ["work", "render"]);
    assert_eq!(frames, Some(def.tasks));
}

#[test]
fn inference_is_a_latency_circle_around_shanghai() {
    let all = examples();
    let (_, def) = example(&all, "inference");
    assert_eq!(def.kind, JobKind::Service);
    assert_eq!(def.resource_kind, Kind::Gpu);
    assert_eq!(def.latency_ms_max, Some(10.0));
    let topology = Topology::national();
    let shanghai = topology.region("shanghai").expect("shanghai");
    assert_eq!(def.origin, shanghai);
    // The circle holds more than Shanghai, and not the western hubs.
    let spec = topology.spec();
    let inside: Vec<&str> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|&(i, _)| spec.latency_ms[shanghai][i] <= 10.0)
        .map(|(_, region)| region.id.as_str())
        .collect();
    assert!(inside.len() >= 3, "{inside:?}");
    assert!(!inside.contains(&"guian"), "{inside:?}");
    for family in &def.families {
        assert!(
            ["nvidia", "ascend", "hygon", "cambricon"].contains(&family.as_str()),
            "{family} is not a GPU family"
        );
    }
}

#[test]
fn training_is_an_ascend_gang() {
    let all = examples();
    let (_, def) = example(&all, "training");
    assert_eq!(def.kind, JobKind::Gang);
    assert_eq!(def.resource_kind, Kind::Gpu);
    assert_eq!((def.tasks, def.units), (8, 8));
    assert_eq!(def.families, ["ascend"]);
}

#[test]
fn hpc_has_a_slurm_script() {
    let all = examples();
    let (spec, def) = example(&all, "hpc");
    assert_eq!(def.resource_kind, Kind::Hpc);
    let script = spec.run.slurm_script.as_deref().expect("a slurm_script");
    assert!(script.starts_with("#!"), "{script}");
    assert!(script.contains("#SBATCH --nodes=1"), "{script}");
    assert!(script.contains("\nsrun "), "{script}");
}

#[test]
fn analytics_stays_in_its_province() {
    let all = examples();
    let (spec, def) = example(&all, "analytics");
    assert_eq!(def.resource_kind, Kind::Cpu);
    // Hebei's regions in the built-in topology (crates/place/data/regions.csv).
    let hebei = ["zhangjiakou", "langfang", "shijiazhuang"];
    let allowed = spec.allowed_regions.as_ref().expect("allowed_regions");
    assert!(!allowed.is_empty());
    for region in allowed {
        assert!(hebei.contains(&region.as_str()), "{region} is not in Hebei");
    }
    let data = spec.data_region.as_deref().expect("data_region");
    assert!(hebei.contains(&data));
    assert!(def
        .allowed_regions
        .as_ref()
        .unwrap()
        .contains(&def.data_region));
}
