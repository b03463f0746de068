//! Every loader rejects a malformed line with its file and line number.

use suanwang_sim::workload::{alibaba, azure, own, swf};
use suanwang_sim::SimError;

fn line_of(result: Result<suanwang_sim::workload::Loaded, SimError>) -> (usize, String) {
    match result {
        Err(SimError::Line {
            file,
            line,
            message,
        }) => {
            assert_eq!(file, "t.csv");
            (line, message)
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

/// (text, expected line, a word the message must contain)
fn check(
    parse: impl Fn(&str) -> Result<suanwang_sim::workload::Loaded, SimError>,
    table: &[(&str, usize, &str)],
) {
    for (text, line, word) in table {
        let (got, message) = line_of(parse(text));
        assert_eq!(got, *line, "{text:?}: {message}");
        assert!(
            message.contains(word),
            "{text:?}: {message:?} lacks {word:?}"
        );
    }
}

const OWN: &str = "submit_s,kind,resource,tasks,units,duration_s\n";

#[test]
fn own_csv() {
    let ok = own::parse(
        "t.csv",
        &format!("{OWN}0,batch,cpu,2,4,60\n# comment\n\n5,gang,gpu,3,1,120\n"),
    )
    .unwrap();
    assert_eq!(ok.raws.len(), 2);
    assert_eq!(ok.raws[1].line, 5);
    check(
        |t| own::parse("t.csv", t),
        &[
            (
                &format!("{OWN}0,batch,cpu,2,4,60\n0,batch,tpu,1,1,1\n"),
                3,
                "resource",
            ),
            (&format!("{OWN}0,batch,cpu,2,4\n"), 2, "fields"),
            (&format!("{OWN}x,batch,cpu,2,4,60\n"), 2, "submit_s"),
            (&format!("{OWN}0,batch,cpu,0,4,60\n"), 2, "tasks"),
            (&format!("{OWN}0,sometimes,cpu,1,4,60\n"), 2, "kind"),
            (&format!("{OWN}0,batch,cpu,1,4,-1\n"), 2, "duration_s"),
            (
                "submit_s,kind,resource,tasks,units,duration_s,colour\n",
                1,
                "colour",
            ),
            ("submit_s,kind,resource,tasks,units\n", 1, "duration_s"),
            (&format!("{OWN}0,\"batch\",cpu,1,4,60\n"), 2, "quoted"),
        ],
    );
}

const POD: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";

#[test]
fn alibaba() {
    let ok = alibaba::parse(
        "t.csv",
        &format!(
            "{POD}p0,12000,16384,1,460,,LS,Running,0,100,0\np1,6000,1,0,0,,BE,Failed,5,10,5\n"
        ),
    )
    .unwrap();
    assert_eq!(ok.raws.len(), 2);
    assert_eq!(ok.raws[0].units, 1);
    assert_eq!(ok.raws[1].units, 6);
    assert!(ok.raws[1].fail_share > 0.999);
    check(|t| alibaba::parse("t.csv", t), &[
        (&format!("{POD}p0,12000,16384,1,460,,LS,Running,0,100,0\np1,1,1,1,1000,,XX,Running,0,1,0\n"), 3, "qos"),
        (&format!("{POD}p0,12000,16384,1,460,,LS,Running,100,50,0\n"), 2, "deletion_time"),
        (&format!("{POD}p0,12000,16384,one,460,,LS,Running,0,100,0\n"), 2, "num_gpu"),
        (&format!("{POD}p0,12000,16384,1,460,,LS\n"), 2, "fields"),
        ("name,cpu_milli\n", 1, "missing column"),
    ]);
}

#[test]
fn swf() {
    let job = "    1        0     -1   1451  128     -1    -1   -1     -1    -1 -1   1   1  -1 -1 -1 -1 -1";
    let ok = swf::parse("t.csv", &format!("; comment\n{job}\n"), 8).unwrap();
    assert_eq!(ok.raws[0].tasks, 16);
    assert_eq!(ok.raws[0].line, 2);
    check(
        |t| swf::parse("t.csv", t, 8),
        &[
            (&format!("; c\n{job}\n 2 0 -1\n"), 3, "18"),
            (
                &format!("{job}\n{}\n", job.replace("1451", "x")),
                2,
                "field 4",
            ),
        ],
    );
}

#[test]
fn azure() {
    let head = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
    let ok = azure::parse(
        "t.csv",
        &format!("{head}2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:16:50.1,4000000,1\n2023-11-16 18:25:00,10,10\n"),
        300.0,
        2_000.0,
    )
    .unwrap();
    // Two windows; the first needs ceil(4,000,419 / 300 / 2,000) = 7 replicas.
    assert_eq!(ok.raws.len(), 2);
    assert_eq!(ok.raws[0].tasks, 7);
    assert_eq!(ok.raws[1].tasks, 1);
    check(
        |t| azure::parse("t.csv", t, 300.0, 2_000.0),
        &[
            (
                &format!("{head}2023-11-16 18:15:46,1,1\nyesterday,1,1\n"),
                3,
                "TIMESTAMP",
            ),
            (&format!("{head}2023-11-16 18:15:46,1\n"), 2, "fields"),
            (
                &format!("{head}2023-11-16 18:25:46,1,1\n2023-11-16 18:15:46,1,1\n"),
                3,
                "TIMESTAMP",
            ),
            ("TIME,A,B\n", 1, "header"),
        ],
    );
}

#[test]
fn a_trace_job_the_server_would_refuse_names_its_line() {
    let text = "submit_s,kind,resource,tasks,units,duration_s,origin\n0,batch,cpu,1,1,60,shanghai\n0,batch,cpu,1,1,60,atlantis\n";
    let scenario = format!(
        "{}[[workload]]\nname = \"w\"\nsource = \"csv\"\nfile = \"jobs.csv\"\n",
        crate::runs::SITES
    );
    let error = crate::scenario(&scenario, &[("jobs.csv", text)])
        .unwrap_err()
        .to_string();
    assert!(error.contains("jobs.csv:3:"), "{error}");
    assert!(error.contains("origin"), "{error}");
}
