//! `suanwang meter catalogue`: offline, the embedded device catalogue.

use serde_json::Value;

use crate::Dir;

#[test]
fn catalogue_json_is_complete_and_exact() {
    let dir = Dir::new("meter-catalogue-json");
    let run = dir
        .run(&["meter", "catalogue", "--output", "json"])
        .expect(0);
    let catalogue: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(catalogue["version"], "2026-11");
    assert_eq!(catalogue["effective_from"], "2026-11-01");
    assert!(catalogue["scu_definition"]
        .as_str()
        .unwrap()
        .contains("FP32-equivalent"));
    let models = catalogue["models"].as_array().expect("models");
    assert!(models.len() >= 25, "{}", models.len());
    let model = |id: &str| {
        models
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    // Every kind, each with a positive exact factor that matches its decimal.
    for kind in ["cpu", "gpu", "hpc"] {
        assert!(models.iter().any(|m| m["kind"] == kind), "no {kind}");
    }
    for m in models {
        let (num, den) = (
            m["scu_num"].as_u64().unwrap(),
            m["scu_den"].as_u64().unwrap(),
        );
        assert!(num > 0 && den > 0, "{m}");
        let shown = if den == 1 {
            num.to_string()
        } else {
            format!("{num}/{den}")
        };
        assert_eq!(m["scu_per_unit"], shown.as_str(), "{m}");
        let decimal: f64 = m["scu_per_unit_decimal"].as_str().unwrap().parse().unwrap();
        assert!((decimal - num as f64 / den as f64).abs() < 1e-6, "{m}");
        assert!(!m["source"].as_str().unwrap().is_empty(), "{m}");
    }
    let h100 = model("nvidia-h100-sxm");
    assert_eq!(h100["unit"], "device");
    assert_eq!(h100["fp64_tflops"], "34");
    assert_eq!(h100["fp32_tflops"], "67");
    assert_eq!(
        h100["fp16_tflops"], "989.5",
        "dense, not the sparsity figure"
    );
    assert_eq!(h100["scu_per_unit"], "1979/4");
    assert_eq!(h100["scu_per_unit_decimal"], "494.75");
    let epyc = model("amd-epyc-9654");
    assert_eq!(epyc["unit"], "core");
    assert_eq!(epyc["scu_per_unit"], "48/625");
    assert_eq!(epyc["fp16_tflops"], Value::Null);
    let node = model("hpc-2s-epyc-9654");
    assert_eq!(node["unit"], "node");
    assert_eq!(node["scu_per_unit_decimal"], "14.7456");
    for id in [
        "intel-xeon-8480p",
        "huawei-kunpeng-920-7260",
        "hygon-c86-7285",
        "phytium-s2500",
        "nvidia-a100-sxm",
        "nvidia-h800-sxm",
        "nvidia-h20",
        "nvidia-l40s",
        "nvidia-v100-sxm2",
        "huawei-ascend-910b",
        "hygon-dcu-z100",
        "cambricon-mlu370-x8",
        "cambricon-mlu590",
    ] {
        model(id);
    }
}

#[test]
fn catalogue_text_shows_every_model_with_its_factor() {
    let dir = Dir::new("meter-catalogue-text");
    let run = dir.run(&["meter", "catalogue"]).expect(0);
    let text = &run.stdout;
    assert!(
        text.starts_with("device catalogue 2026-11, effective from 2026-11-01"),
        "{text}"
    );
    assert!(
        text.contains("1 SCU = 1 TFLOPS of FP32-equivalent"),
        "{text}"
    );
    let row = |id: &str| -> Vec<&str> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{text}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(
        row("nvidia-h100-sxm"),
        [
            "nvidia-h100-sxm",
            "gpu",
            "device",
            "34",
            "67",
            "989.5",
            "1979/4",
            "494.75"
        ]
    );
    assert_eq!(
        row("amd-epyc-9654"),
        [
            "amd-epyc-9654",
            "cpu",
            "core",
            "0.0384",
            "0.0768",
            "-",
            "48/625",
            "0.0768"
        ]
    );
    assert_eq!(
        row("nvidia-l40s"),
        [
            "nvidia-l40s",
            "gpu",
            "device",
            "-",
            "91.6",
            "362.05",
            "7241/40",
            "181.025"
        ]
    );
    let json_models = {
        let run = dir
            .run(&["meter", "catalogue", "--output", "json"])
            .expect(0);
        let v: Value = serde_json::from_str(&run.stdout).unwrap();
        v["models"].as_array().unwrap().len()
    };
    let rows = text
        .lines()
        .skip_while(|l| !l.starts_with("MODEL"))
        .skip(1)
        .count();
    assert_eq!(rows, json_models);
}
