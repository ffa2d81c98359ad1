//! Runs every seed of fuzz/corpus/<target>/ through its target, without AFL++: the targets'
//! checks hold on the seeds, and a seed added from a fixed crash stays fixed.

use std::path::Path;

#[test]
fn corpus_replays_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for (name, init, run) in encml_fuzz::targets::ALL {
        init();
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("no corpus for {name} at {}", dir.display());
        };
        let mut n = 0;
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            eprintln!("{name}: {}", path.display());
            run(&data);
            n += 1;
        }
        assert!(n > 0, "empty corpus for {name}");
        total += n;
    }
    eprintln!("{total} seeds replayed");
}

#[test]
fn empty_and_tiny_inputs() {
    for (_, init, run) in encml_fuzz::targets::ALL {
        init();
        for data in [&b""[..], b"\0", b"\xff", b"EM\x01\x01", b"[", b"dp1:"] {
            run(data);
        }
    }
}
